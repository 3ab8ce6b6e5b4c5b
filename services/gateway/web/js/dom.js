// Small DOM and formatting helpers shared by the views. No framework: elements are built with
// h() and lists are kept in step with the state by syncList(), which reuses each item's element
// (so focus, images and scroll positions survive a re-render). Times, dates and durations are
// said in the current language (Intl, the catalogs of i18n.js).

import { t, locale, translateElement } from "./i18n.js";

/**
 * An element: h("button", {class: "x", onclick: fn, dataset: {testid: "y"}}, "text", child).
 * Text that never changes but with the language is given as a key: {"data-i18n": "chat.send"}
 * (and "data-i18n-title", "-placeholder", "-aria-label"); it is filled now and on a switch.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  let translated = false;
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
    if (name.startsWith("data-i18n")) translated = true;
  }
  append(el, children);
  if (translated) translateElement(el);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Set text only when it differs (no layout work, no lost selection when unchanged). */
export function setText(el, text) {
  const value = text ?? "";
  if (el.textContent !== value) el.textContent = value;
}

/** Set or remove an attribute, touching the DOM only on a change. */
export function setAttr(el, name, value) {
  if (value === null || value === undefined || value === false) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== String(value)) {
    el.setAttribute(name, String(value));
  }
}

/**
 * Make `container`'s children the items, in order: `create(item)` builds an element the first
 * time a key is seen, `update(el, item)` refreshes it every time. Elements of vanished keys go.
 */
export function syncList(container, items, key, create, update) {
  if (container.dataset.locale !== locale()) { // words fixed at creation: built again after a switch
    container.dataset.locale = locale();
    for (const child of [...container.children]) if (child.dataset.key !== undefined) child.remove();
  }
  const existing = new Map();
  for (const child of container.children) {
    if (child.dataset.key !== undefined) existing.set(child.dataset.key, child);
  }
  let cursor = container.firstElementChild;
  while (cursor && cursor.dataset.key === undefined) cursor = cursor.nextElementSibling;
  const keep = new Set();
  for (const item of items) {
    const k = String(key(item));
    keep.add(k);
    let el = existing.get(k);
    if (!el) {
      el = create(item);
      el.dataset.key = k;
    }
    update(el, item);
    if (el !== cursor) container.insertBefore(el, cursor);
    else cursor = cursor.nextElementSibling;
  }
  for (const [k, el] of existing) if (!keep.has(k)) el.remove();
}

// --- formatting (in the current language) ------------------------------------------------------
const formats = new Map(); // "locale|name" -> Intl formatter
function format(name, make) {
  const key = `${locale()}|${name}`;
  if (!formats.has(key)) formats.set(key, make(locale()));
  return formats.get(key);
}
const timeFormat = () => format("time", (l) => new Intl.DateTimeFormat(l, { hour: "2-digit", minute: "2-digit" }));
const dayFormat = () => format("day", (l) => new Intl.DateTimeFormat(l, { month: "short", day: "numeric" }));
const fullFormat = () => format("full", (l) => new Intl.DateTimeFormat(l, { dateStyle: "medium", timeStyle: "short" }));
const clockFormat = () => format("clock", (l) => new Intl.DateTimeFormat(l, { timeStyle: "medium" }));
const relative = () => format("relative", (l) => new Intl.RelativeTimeFormat(l, { numeric: "auto" }));

/** Today: the time ("14:05"); before: the day ("4 Mar", "3月4日"). */
export function shortTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const today = new Date();
  return date.toDateString() === today.toDateString() ? timeFormat().format(date) : dayFormat().format(date);
}

export function fullTime(iso) {
  return iso ? fullFormat().format(new Date(iso)) : "";
}

/** The time of day with seconds ("14:05:09"). */
export function clockTime(iso) {
  return iso ? clockFormat().format(new Date(iso)) : "";
}

/** "just now", "5 minutes ago", "3 hours ago", "yesterday", "on 4 Mar" (刚刚, 5分钟前, 昨天, 3月4日). */
export function ago(iso) {
  if (!iso) return "";
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return t("time.just_now");
  if (seconds < 3600) return relative().format(-Math.floor(seconds / 60), "minute");
  if (seconds < 86400) return relative().format(-Math.floor(seconds / 3600), "hour");
  if (seconds < 2 * 86400) return relative().format(-1, "day");
  return t("time.on_day", { day: dayFormat().format(new Date(iso)) });
}

/** Time left until `iso`: "42 s", "4:05", "2 h", "3 d" (42秒, 4:05, 2小时, 3天). */
export function countdown(iso) {
  const left = Math.max(0, Math.ceil((new Date(iso).getTime() - Date.now()) / 1000));
  if (left < 60) return t("time.seconds_short", { count: left });
  if (left < 3600) return `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  if (left < 86400) return t("time.hours_short", { count: Math.round(left / 3600) });
  return t("time.days_short", { count: Math.round(left / 86400) });
}

export function fileSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  return ((parts[0]?.[0] || "?") + (parts[1]?.[0] || "")).toUpperCase();
}

// Icons drawn inline (no icon font, no emoji font needed): 24x24 stroke paths.
const ICONS = {
  clip: "M21 11.5l-8.6 8.6a5.5 5.5 0 0 1-7.8-7.8l8.6-8.6a3.7 3.7 0 0 1 5.2 5.2l-8.6 8.6a1.8 1.8 0 0 1-2.6-2.6l7.9-7.9",
  file: "M14 3H6a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V9zM14 3v6h6",
  timer: "M12 8v5l3 2M12 21a8 8 0 1 0 0-16 8 8 0 0 0 0 16zM9 2h6",
  phone: "M22 16.9v3a2 2 0 0 1-2.2 2 19.8 19.8 0 0 1-8.6-3.1 19.5 19.5 0 0 1-6-6A19.8 19.8 0 0 1 2.1 4.2 2 2 0 0 1 4.1 2h3a2 2 0 0 1 2 1.7c.1 1 .4 1.9.7 2.8a2 2 0 0 1-.5 2.1L8.1 9.9a16 16 0 0 0 6 6l1.3-1.3a2 2 0 0 1 2.1-.4c.9.3 1.8.6 2.8.7a2 2 0 0 1 1.7 2z",
  "phone-off": "M10.7 13.3a16 16 0 0 0 3.4 2.6l1.3-1.3a2 2 0 0 1 2.1-.4c.9.3 1.8.6 2.8.7a2 2 0 0 1 1.7 2v3a2 2 0 0 1-2.2 2 19.8 19.8 0 0 1-8.6-3.1 19.4 19.4 0 0 1-3.3-2.6m-2.7-3.4A19.8 19.8 0 0 1 2.1 4.2 2 2 0 0 1 4.1 2h3a2 2 0 0 1 2 1.7c.1 1 .4 1.9.7 2.8a2 2 0 0 1-.5 2.1L8.1 9.9M23 1L1 23",
  video: "M23 7l-7 5 7 5zM3 5h11a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H3a2 2 0 0 1-2-2V7a2 2 0 0 1 2-2z",
  "video-off": "M16 16v1a2 2 0 0 1-2 2H3a2 2 0 0 1-2-2V7a2 2 0 0 1 2-2h2m5.7 0H14a2 2 0 0 1 2 2v3.3l1 1L23 7v10M1 1l22 22",
  mic: "M12 1a3 3 0 0 0-3 3v8a3 3 0 0 0 6 0V4a3 3 0 0 0-3-3zM19 10v2a7 7 0 0 1-14 0v-2M12 19v4M8 23h8",
  "mic-off": "M1 1l22 22M9 9v3a3 3 0 0 0 5.1 2.1M15 9.3V4a3 3 0 0 0-5.9-.6M17 17a7 7 0 0 1-12-5v-2m14 0v2c0 .4 0 .8-.1 1.2M12 19v4M8 23h8",
  reply: "M9 14L4 9l5-5M4 9h10.5a5.5 5.5 0 0 1 5.5 5.5v0a5.5 5.5 0 0 1-5.5 5.5H11",
  smile: "M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20zM8 14s1.5 2 4 2 4-2 4-2M9 9h.01M15 9h.01",
  edit: "M12 20h9M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4z",
  trash: "M3 6h18M8 6V4a2 2 0 0 1 2-2h4a2 2 0 0 1 2 2v2m3 0v14a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V6",
  undo: "M3 7v6h6M21 17a9 9 0 0 0-15-6.7L3 13",
  flame: "M12 22c4 0 7-2.7 7-6.8 0-4.4-3.4-7-4.6-11.2-2.5 2-3.2 4.4-3.3 6.2C9.6 9 8.9 7.8 8.7 6.6 6.4 8.7 5 11.6 5 15.2 5 19.3 8 22 12 22z",
};

export function icon(name, label = "") {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon icon-${name}`);
  if (label) {
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
  } else {
    svg.setAttribute("aria-hidden", "true");
  }
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

/** A stable hue per id, for avatars. */
export function hue(id) {
  let n = 0;
  for (const c of String(id)) n = (n * 31 + c.charCodeAt(0)) % 360;
  return n;
}

export function avatar(id, name) {
  const el = h("span", { class: "avatar", "aria-hidden": "true" }, initials(name));
  el.style.setProperty("--hue", hue(id));
  return el;
}

export function randomId(prefix = "") {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** fn, called `ms` after the last of a burst of calls. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
