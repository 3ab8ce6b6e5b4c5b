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
  return sticker.sticker_id.startsWith("builtin:") ? sticker.sticker_id.slice(8).replace(/[-_]/g, " ") : "your sticker";
}

// --- in the timeline -----------------------------------------------------------------------------
/** A sticker message's picture: large, no bubble (style.css `.msg.sticker`). */
export function stickerView(sticker, onLoad) {
  const img = h("img", {
    class: "sticker-image", src: sticker.url, alt: `Sticker: ${stickerName(sticker)}`, draggable: "false",
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
    toast("Added to your stickers");
  } catch (error) {
    showError(stickerError(error, "stickers.add"));
  }
}

function stickerError(error, operation) {
  if (error.code === "conflict" && operation === "stickers.add") {
    return "You have 200 stickers already: remove one (in the sticker panel) before adding another.";
  }
  if (error.code === "not_found" && operation === "stickers.add") return "That image is not available any more.";
  if (error.code === "not_found" && operation === "message.send") return "That sticker does not exist any more.";
  if (error.code === "bad_request" && /unknown operation/i.test(error.message || "")) {
    return "Stickers are not available on this server yet.";
  }
  return describe(error, operation);
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
  const mineSection = h("section", { class: "sticker-section", "aria-label": "Your stickers" },
    h("h3", { class: "emoji-section-title" }, "Yours"), mine);
  const status = h("p", { class: "muted small sticker-status", role: "status" });
  const el = h("div", { class: "sticker-panel", role: "dialog", "aria-label": "Stickers", hidden: true, dataset: { testid: "sticker-panel" } },
    h("div", { class: "sticker-body" },
      mineSection,
      h("section", { class: "sticker-section", "aria-label": "Built-in stickers" }, h("h3", { class: "emoji-section-title" }, "Parley pack"), builtin),
      h("p", { class: "muted small sticker-hint" }, "Make your own: hover an image in a chat and choose “Add to stickers”.")),
    status);

  function item(sticker) {
    const name = stickerName(sticker);
    const pick = h("button", {
      type: "button", class: "sticker-choice", title: `Send ${name}`, "aria-label": `Send sticker: ${name}`,
      dataset: { testid: "sticker-choice", stickerId: sticker.sticker_id, pack: sticker.pack },
    }, h("img", { src: sticker.url, alt: "", loading: "lazy", draggable: "false" }));
    pick.addEventListener("click", () => {
      close();
      onSend({ sticker_id: sticker.sticker_id, url: sticker.url });
    });
    if (sticker.pack !== "mine") return h("div", { class: "sticker-item" }, pick);
    const remove = h("button", {
      type: "button", class: "sticker-remove", title: "Remove from your stickers", "aria-label": "Remove this sticker",
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
    status.textContent = stickers.length ? "" : "Loading stickers…";
    refresh().then(() => {
      status.textContent = stickers.length ? "" : "No stickers yet.";
      render();
    }, (error) => {
      status.textContent = stickerError(error, "stickers.list");
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
