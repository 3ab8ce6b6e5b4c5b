// Stickers (docs/protocol.md "Stickers and emoji"): the composer's sticker panel lists
// `stickers.list` (yours first, then the built-in pack) and a click sends the sticker; a sticker
// message is drawn large, without a bubble; "Add to stickers" on an image message makes one of
// yours from it (`stickers.add`), and yours can be removed from the panel (`stickers.remove`).
// Sticker images are public URLs of the gateway (/app/stickers/…, /images/…): no token needed.

import { h } from "../dom.js";
import { conn, showError } from "../wire.js";
import { describe } from "../errors.js";
import { mediaIcon, placeBeside, toast } from "./media.js";
import { sealed } from "./burn.js";
import { t, msgKey, onLocaleChange, applyTranslations } from "../i18n.js";

// The built-in pack's stickers by name (`builtin:<name>`), in words.
const BUILTIN_NAMES = {
  cat: msgKey("stickers.name.cat"), coffee: msgKey("stickers.name.coffee"), fire: msgKey("stickers.name.fire"), heart: msgKey("stickers.name.heart"),
  hello: msgKey("stickers.name.hello"), laughing: msgKey("stickers.name.laughing"), ok: msgKey("stickers.name.ok"), party: msgKey("stickers.name.party"),
  sad: msgKey("stickers.name.sad"), star: msgKey("stickers.name.star"), thanks: msgKey("stickers.name.thanks"), "thumbs-up": msgKey("stickers.name.thumbs_up"),
};

let stickers = []; // [{sticker_id, url, pack}], as stickers.list last said
let loading = null;

/** What stickers.list says now (and remember it). */
function refresh() {
  loading ||= conn.request("stickers.list", {}).then((reply) => {
    stickers = reply.stickers;
    return stickers;
  }).finally(() => (loading = null));
  return loading;
}

function stickerName(sticker) {
  if (!sticker.sticker_id.startsWith("builtin:")) return t("stickers.yours_one");
  const name = sticker.sticker_id.slice(8);
  return BUILTIN_NAMES[name] ? t(BUILTIN_NAMES[name]) : name.replace(/[-_]/g, " ");
}

// --- in the timeline -----------------------------------------------------------------------------
/** A sticker message's picture: large, no bubble (style.css `.msg.sticker`). */
export function stickerView(sticker, onLoad) {
  const img = h("img", {
    class: "sticker-image", src: sticker.url, alt: t("stickers.alt", { name: stickerName(sticker) }), draggable: "false",
    dataset: { testid: "message-sticker", stickerId: sticker.sticker_id },
  });
  img.addEventListener("load", onLoad);
  return img;
}

/** The sticker a message shows, or null (recalled, burned and sealed messages show none). */
export function stickerOf(message) {
  if (!message.sticker || message.recalled || message.burned || sealed(message)) return null;
  return message.sticker;
}

/** May "Add to stickers" be offered for this message? (a stored image message) */
export function canAddSticker(message) {
  const type = (message.file?.content_type || "").toLowerCase();
  return Boolean(message.seq && message.message_id) && type.startsWith("image/")
    && !message.recalled && !message.burned && !message.burn;
}

/** Make a sticker of mine from the image of `message`. */
export async function addToStickers(message) {
  try {
    const sticker = await conn.request("stickers.add", { file_id: message.file.file_id });
    stickers = [...stickers.filter((s) => s.sticker_id !== sticker.sticker_id), sticker];
    panel?.render();
    toast(t("stickers.added"));
  } catch (error) {
    showError(stickerError(error, "stickers.add"));
  }
}

/** () => the words for a failed sticker operation, in the language shown when they are. */
function stickerError(error, operation) {
  if (error.code === "bad_request" && /unknown operation/i.test(error.message || "")) return () => t("stickers.unavailable");
  return () => describe(error, operation);
}

/** The toolbar's icon for "Add to stickers". */
export function stickerIcon() {
  return mediaIcon("sticker");
}

// --- the panel -----------------------------------------------------------------------------------
let panel = null;

/** The composer's sticker button opens the panel; a click on a sticker calls `onSend(sticker)`. */
export function setupStickerPanel(button, onSend) {
  panel = buildPanel(button, onSend);
  button.addEventListener("click", () => panel.toggle());
}

function buildPanel(button, onSend) {
  const mine = h("div", { class: "sticker-grid", dataset: { testid: "my-stickers" } });
  const builtin = h("div", { class: "sticker-grid", dataset: { testid: "builtin-stickers" } });
  const mineSection = h("section", { class: "sticker-section", "data-i18n-aria-label": "stickers.yours_label" },
    h("h3", { class: "emoji-section-title", "data-i18n": "stickers.yours" }), mine);
  const status = h("p", { class: "muted small sticker-status", role: "status" });
  const el = h("div", { class: "sticker-panel", role: "dialog", "data-i18n-aria-label": "stickers.button", hidden: true, dataset: { testid: "sticker-panel" } },
    h("div", { class: "sticker-body" },
      mineSection,
      h("section", { class: "sticker-section", "data-i18n-aria-label": "stickers.builtin_label" },
        h("h3", { class: "emoji-section-title", "data-i18n": "stickers.builtin" }), builtin),
      h("p", { class: "muted small sticker-hint", "data-i18n": "stickers.hint" })),
    status);
  onLocaleChange(() => {
    applyTranslations(el);
    render();
  });

  function item(sticker) {
    const name = stickerName(sticker);
    const pick = h("button", {
      type: "button", class: "sticker-choice", title: t("stickers.send", { name }), "aria-label": t("stickers.send_label", { name }),
      dataset: { testid: "sticker-choice", stickerId: sticker.sticker_id, pack: sticker.pack },
    }, h("img", { src: sticker.url, alt: "", loading: "lazy", draggable: "false" }));
    pick.addEventListener("click", () => {
      close();
      onSend({ sticker_id: sticker.sticker_id, url: sticker.url });
    });
    if (sticker.pack !== "mine") return h("div", { class: "sticker-item" }, pick);
    const remove = h("button", {
      type: "button", class: "sticker-remove", title: t("stickers.remove"), "aria-label": t("stickers.remove_label"),
      dataset: { testid: "sticker-remove" },
    }, mediaIcon("close"));
    remove.addEventListener("click", () => removeSticker(sticker));
    return h("div", { class: "sticker-item" }, pick, remove);
  }

  async function removeSticker(sticker) {
    try {
      await conn.request("stickers.remove", { sticker_id: sticker.sticker_id });
      stickers = stickers.filter((s) => s.sticker_id !== sticker.sticker_id);
      render();
    } catch (error) {
      showError(stickerError(error, "stickers.remove"));
    }
  }

  function render() {
    const own = stickers.filter((s) => s.pack === "mine");
    mineSection.hidden = own.length === 0;
    mine.replaceChildren(...own.map(item));
    builtin.replaceChildren(...stickers.filter((s) => s.pack !== "mine").map(item));
    if (!el.hidden) placeBeside(el, button);
  }

  function open() {
    if (!el.isConnected) document.body.append(el);
    el.hidden = false;
    button.setAttribute("aria-expanded", "true");
    render();
    status.textContent = stickers.length ? "" : t("stickers.loading");
    refresh().then(() => {
      status.textContent = stickers.length ? "" : t("stickers.none");
      render();
    }, (error) => {
      status.textContent = stickerError(error, "stickers.list")();
    });
  }

  function close(returnFocus = false) {
    if (el.hidden) return;
    el.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (returnFocus) button.focus();
  }

  el.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      close(true);
    }
  });
  document.addEventListener("pointerdown", (event) => {
    if (!el.hidden && !el.contains(event.target) && !button.contains(event.target)) close();
  });
  addEventListener("resize", () => close());

  return {
    render,
    close,
    toggle: () => (el.hidden ? open() : close()),
  };
}

/** Close the panel (the conversation changed). */
export function closeStickerPanel() {
  panel?.close();
}
