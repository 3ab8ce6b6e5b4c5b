// The web client's strings come from message catalogs (js/locales/<locale>.js): Simplified
// Chinese and English, chosen from the browser's language unless the user picked one (kept in
// localStorage, switched in the profile). `t("key", {name: "Ann"})` fills `{name}`; an entry
// that is an object holds plural forms ({one, other}: Intl.PluralRules picks by `count`; Chinese
// has only `other`). Static text in the page carries `data-i18n="key"` (and
// `data-i18n-placeholder`, `-title`, `-aria-label`): applyTranslations() fills it at start and
// again on a switch, for which views that keep text of their own listen (onLocaleChange).
import en from "./locales/en.js";
import zhCN from "./locales/zh-CN.js";

export const LOCALES = { en, "zh-CN": zhCN };
/** Each language named in itself, for the switch. */
export const LANGUAGE_NAMES = { en: "English", "zh-CN": "简体中文" };
const STORAGE_KEY = "parley.locale";

export function pickLocale(languages = navigator.languages || [navigator.language]) {
  let chosen = null;
  try {
    chosen = localStorage.getItem(STORAGE_KEY);
  } catch {
    // storage refused (private mode): the browser's languages decide
  }
  if (chosen && LOCALES[chosen]) return chosen;
  for (const language of languages) {
    if (/^zh\b/i.test(language)) return "zh-CN";
    if (/^en\b/i.test(language)) return "en";
  }
  return "en";
}

let current = pickLocale();
let plurals = new Intl.PluralRules(current);
const listeners = new Set();
const page = typeof document === "undefined" ? null : document; // none in a service worker
if (page) page.documentElement.lang = current;

export function locale() {
  return current;
}

/** fn() after every switch of language (the new one is locale()). */
export function onLocaleChange(fn) {
  listeners.add(fn);
}

/** Switch to `next` at once (no reload), and remember it for the next visit. */
export function setLocale(next) {
  if (!LOCALES[next]) throw new Error(`no catalog for ${next}`);
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // not remembered, still switched
  }
  if (next === current) return;
  current = next;
  plurals = new Intl.PluralRules(current);
  if (page) page.documentElement.lang = next;
  for (const fn of listeners) {
    try {
      fn(next);
    } catch (error) {
      console.error("locale listener failed", error);
    }
  }
}

function entry(key) {
  return LOCALES[current][key] ?? LOCALES.en[key];
}

/** A catalog key kept in a table to be translated later: marked for tests/unit/test_web_catalogs.py. */
export function msgKey(key) {
  return key;
}

export function t(key, params = {}) {
  let text = entry(key);
  if (text === undefined) return key;
  if (typeof text === "object") text = text[plurals.select(Number(params.count) || 0)] ?? text.other;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

/** Names joined as the language joins them: "Ann, Bob and Cy" / "Ann、Bob和Cy". */
export function list(items) {
  return new Intl.ListFormat(current, { style: "long", type: "conjunction" }).format(items.map(String));
}

const ATTRIBUTES = [["data-i18n-placeholder", "placeholder"], ["data-i18n-title", "title"], ["data-i18n-aria-label", "aria-label"]];
const SELECTOR = ["[data-i18n]", ...ATTRIBUTES.map(([data]) => `[${data}]`)].join(",");

/** Fill one element's marked text and attributes (an element with data-i18n holds text only). */
export function translateElement(el) {
  const key = el.getAttribute("data-i18n");
  if (key !== null) {
    const text = t(key);
    if (el.textContent !== text) el.textContent = text;
  }
  for (const [data, attribute] of ATTRIBUTES) {
    const name = el.getAttribute(data);
    if (name !== null) el.setAttribute(attribute, t(name));
  }
}

/** Translate `root` and every marked element inside it. */
export function applyTranslations(root = page) {
  if (root.nodeType === Node.ELEMENT_NODE && root.matches(SELECTOR)) translateElement(root);
  for (const el of root.querySelectorAll(SELECTOR)) translateElement(el);
}
