// The emoji picker: a panel floating over the page beside the button that opened it (the
// composer's smiley, or "more" among the reactions), with the curated set of emoji_data.js in
// nine categories, a search by name, and the ones used lately first (kept in localStorage).
// One panel serves every caller: open(anchor, onPick) says where it shows and who gets the pick.
// Titles and the emoji's names are in the page's language (Chinese names: emoji_names_zh.js);
// a search finds an emoji by its English words or by any part of its Chinese name.

import { h } from "../dom.js";
import { EMOJI_CATEGORIES } from "../emoji_data.js";
import { ZH_NAMES } from "../emoji_names_zh.js";
import { placeBeside } from "./media.js";
import { t, msgKey, locale, applyTranslations, onLocaleChange } from "../i18n.js";

const RECENT_KEY = "parley.emoji.recent";
const RECENT_MAX = 24;
const CATEGORY_KEYS = {
  recent: msgKey("emoji.recent"), smileys: msgKey("emoji.smileys"), people: msgKey("emoji.people"), nature: msgKey("emoji.nature"),
  food: msgKey("emoji.food"), activities: msgKey("emoji.activities"), travel: msgKey("emoji.travel"), objects: msgKey("emoji.objects"),
  symbols: msgKey("emoji.symbols"), flags: msgKey("emoji.flags"),
};

let picker = null;

/** The page's one emoji picker: {open(anchor, onPick, {keepOpen}), close(), toggle(...), isOpenFor(anchor)}. */
export function emojiPicker() {
  picker ||= buildPicker();
  return picker;
}

// --- recently used -------------------------------------------------------------------------------
function recent() {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
    return Array.isArray(list) ? list.filter((e) => typeof e === "string").slice(0, RECENT_MAX) : [];
  } catch {
    return [];
  }
}

function remember(emoji) {
  const list = [emoji, ...recent().filter((e) => e !== emoji)].slice(0, RECENT_MAX);
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify(list));
  } catch {
    // private mode or full storage: the list is just not kept
  }
}

// --- the panel -----------------------------------------------------------------------------------
const NAMES = new Map(EMOJI_CATEGORIES.flatMap((c) => c.emoji.map((e) => [e.emoji, e.name])));

/** The emoji's name in the page's language ("" when it has none). */
function nameOf(emoji) {
  return (locale() === "zh-CN" && ZH_NAMES.get(emoji)) || NAMES.get(emoji) || "";
}

/** Title and accessible name of an emoji button, in the page's language. */
function labelChoice(button) {
  const { emoji } = button.dataset;
  const name = nameOf(emoji);
  button.title = name ? `${emoji} ${name}` : emoji;
  button.setAttribute("aria-label", name || emoji);
}

function choice(emoji) {
  const button = h("button", { type: "button", class: "emoji-choice", dataset: { testid: "emoji-choice", emoji } }, emoji);
  labelChoice(button);
  return button;
}

/** A section of emoji; `key`: its title's catalog key (translated on a switch), else `title`. */
function section(id, title, buttons, key = CATEGORY_KEYS[id]) {
  const marks = key ? { "data-i18n-aria-label": key } : { "aria-label": title };
  return h("section", { class: "emoji-section", dataset: { category: id }, ...marks },
    h("h3", { class: "emoji-section-title", ...(key ? { "data-i18n": key } : {}) }, key ? "" : title),
    h("div", { class: "emoji-grid" }, buttons));
}

function buildPicker() {
  const search = h("input", {
    type: "search", class: "emoji-search", "data-i18n-placeholder": "emoji.search", "data-i18n-aria-label": "emoji.search",
    autocomplete: "off", spellcheck: "false", dataset: { testid: "emoji-search" },
  });
  const tabs = h("div", { class: "emoji-tabs", role: "toolbar", "data-i18n-aria-label": "emoji.categories" });
  const body = h("div", { class: "emoji-body" });
  const results = h("div", { class: "emoji-results", hidden: true, dataset: { testid: "emoji-results" } });
  const panel = h("div", {
    class: "emoji-panel", role: "dialog", "data-i18n-aria-label": "emoji.button", hidden: true, dataset: { testid: "emoji-panel" },
  }, search, tabs, body, results);

  const recentSection = section("recent", "", []);
  recentSection.dataset.testid = "emoji-recent";
  const tab = (id, icon) => h("button", {
    type: "button", class: "emoji-tab", "data-i18n-title": CATEGORY_KEYS[id], "data-i18n-aria-label": CATEGORY_KEYS[id],
    dataset: { testid: "emoji-tab", category: id },
  }, icon);
  tabs.append(tab("recent", "🕘"));
  body.append(recentSection);
  for (const category of EMOJI_CATEGORIES) {
    tabs.append(tab(category.id, category.icon));
    body.append(section(category.id, category.name, category.emoji.map((e) => choice(e.emoji))));
  }
  onLocaleChange(() => {
    applyTranslations(panel);
    for (const button of panel.querySelectorAll(".emoji-choice")) labelChoice(button);
    filter();
  });

  let anchor = null;
  let onPick = null;
  let keepOpen = false;

  function fillRecent() {
    const list = recent();
    recentSection.hidden = list.length === 0;
    tabs.querySelector('[data-category="recent"]').hidden = list.length === 0;
    recentSection.querySelector(".emoji-grid").replaceChildren(...list.map((emoji) => choice(emoji)));
  }

  function filter() {
    const query = search.value.trim().toLowerCase();
    const words = query.split(/\s+/).filter(Boolean);
    body.hidden = words.length > 0;
    tabs.hidden = words.length > 0;
    results.hidden = words.length === 0;
    if (!words.length) return;
    const found = [];
    for (const category of EMOJI_CATEGORIES) {
      for (const e of category.emoji) {
        const names = e.name.split(" ");
        const chinese = ZH_NAMES.get(e.emoji) || "";
        if (words.every((w) => names.some((n) => n.startsWith(w))) || (chinese && chinese.toLowerCase().includes(query))) {
          found.push(choice(e.emoji));
        }
      }
    }
    results.replaceChildren(found.length
      ? section("results", t("emoji.results_for", { query: search.value.trim() }), found, null)
      : h("p", { class: "muted small emoji-none" }, t("emoji.none_found")));
  }

  function open(at, pick, options = {}) {
    anchor = at;
    onPick = pick;
    keepOpen = Boolean(options.keepOpen);
    search.value = "";
    filter();
    fillRecent();
    if (!panel.isConnected) document.body.append(panel);
    panel.hidden = false;
    body.scrollTop = 0;
    setAttr(anchor, true);
    placeBeside(panel, anchor);
    if (!matchMedia("(pointer: coarse)").matches) search.focus({ preventScroll: true });
  }

  function close(returnFocus = false) {
    if (panel.hidden) return;
    panel.hidden = true;
    if (anchor) {
      setAttr(anchor, false);
      if (returnFocus) anchor.focus();
    }
    anchor = null;
    onPick = null;
  }

  panel.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.dataset.category && button.classList.contains("emoji-tab")) {
      const target = body.querySelector(`section[data-category="${button.dataset.category}"]`);
      if (target) body.scrollTop = target.offsetTop; // .emoji-body is positioned (style.css)
      return;
    }
    const emoji = button.dataset.emoji;
    if (!emoji || !onPick) return;
    remember(emoji);
    const pick = onPick;
    if (!keepOpen) close();
    else fillRecent();
    pick(emoji);
  });
  search.addEventListener("input", filter);
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      panel.querySelector(".emoji-results .emoji-choice")?.click();
    }
  });
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      close(true);
    }
  });
  document.addEventListener("pointerdown", (event) => {
    if (!panel.hidden && !panel.contains(event.target) && !anchor?.contains(event.target)) close();
  });
  addEventListener("resize", () => {
    if (!panel.hidden && anchor?.isConnected) placeBeside(panel, anchor);
    else close();
  });

  return {
    open,
    close,
    /** Open for `at`, or close when it is already open for it. */
    toggle(at, pick, options) {
      if (!panel.hidden && anchor === at) close();
      else open(at, pick, options);
    },
    isOpen: () => !panel.hidden,
  };
}

function setAttr(anchor, expanded) {
  if (anchor.tagName === "BUTTON") anchor.setAttribute("aria-expanded", String(expanded));
}
