// The web client's strings come from message catalogs (js/locales/<locale>.js): Simplified
// Chinese and English, chosen from the browser's language unless the user picked one (kept in
// localStorage, switched in the profile). `t("key", {name: "Ann"})` fills `{name}`.
import en from "./locales/en.js";
import zhCN from "./locales/zh-CN.js";

export const LOCALES = { en, "zh-CN": zhCN };
const STORAGE_KEY = "parley.locale";

export function pickLocale(languages = navigator.languages || [navigator.language]) {
  const chosen = localStorage.getItem(STORAGE_KEY);
  if (chosen && LOCALES[chosen]) return chosen;
  for (const language of languages) {
    if (/^zh\b/i.test(language)) return "zh-CN";
    if (/^en\b/i.test(language)) return "en";
  }
  return "en";
}

let current = pickLocale();

export function locale() {
  return current;
}

export function setLocale(next) {
  if (!LOCALES[next]) throw new Error(`no catalog for ${next}`);
  current = next;
  localStorage.setItem(STORAGE_KEY, next);
  document.documentElement.lang = next;
}

export function t(key, params = {}) {
  const text = LOCALES[current][key] ?? LOCALES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}
