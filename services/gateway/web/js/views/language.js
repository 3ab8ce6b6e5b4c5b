// The language switch (English / 简体中文): a <select> on the login screen and in the profile.
// A pick applies at once, without a reload (main.js translates the page and redraws it), and
// is remembered in localStorage (i18n.js); every switch on the page follows.

import { h } from "../dom.js";
import { LANGUAGE_NAMES, locale, setLocale, onLocaleChange } from "../i18n.js";

/** Make `select` the language switch: each language named in itself. */
export function setupLanguageSelect(select) {
  select.replaceChildren(...Object.entries(LANGUAGE_NAMES).map(([code, name]) => h("option", { value: code, lang: code }, name)));
  select.value = locale();
  select.addEventListener("change", () => setLocale(select.value));
  onLocaleChange(() => {
    select.value = locale();
  });
  return select;
}
