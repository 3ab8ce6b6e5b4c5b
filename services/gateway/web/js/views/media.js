// Images in the timeline (docs/protocol.md "Voice messages and thumbnails"): a bubble draws the
// image's thumbnail (a JPEG fitting 320×320, fetched with the token into a blob URL) and a click
// opens the full image in a viewer over the page, fetched only then. A file the server cannot
// thumbnail (415: not an image it reads; 413: too big) is shown as a file card instead; any other
// failure of the thumbnail falls back to the full image, as before thumbnails existed.
// Also the few icons the media views draw that dom.js does not have.

import { h, fileSize } from "../dom.js";
import { token } from "../session.js";
import { objectUrl, thumbnailUrl } from "../files.js";
import { describe } from "../errors.js";
import { showError } from "../wire.js";
import { t, applyTranslations, onLocaleChange } from "../i18n.js";

const PATHS = {
  play: "M7 4.5v15l12.5-7.5z",
  pause: "M7 4h3.5v16H7zM13.5 4H17v16h-3.5z",
  sticker: "M21 12V7a4 4 0 0 0-4-4H7a4 4 0 0 0-4 4v10a4 4 0 0 0 4 4h5zM21 12a9 9 0 0 1-9 9M12 21v-5a4 4 0 0 1 4-4h5",
  stop: "M6 6h12v12H6z",
  send: "M22 2L11 13M22 2l-7 20-4-9-9-4z",
  close: "M18 6L6 18M6 6l12 12",
  download: "M12 3v12M7 10l5 5 5-5M5 21h14",
};

/** An inline SVG icon (24×24 stroke paths, like dom.js's); filled for play, pause and stop. */
export function mediaIcon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon icon-${name}${["play", "pause", "stop"].includes(name) ? " filled" : ""}`);
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", PATHS[name]);
  svg.append(path);
  return svg;
}

/**
 * The image `file` drawn from its thumbnail; `onLoad` when it is drawn (the list keeps its
 * bottom in view), `fileCard()` builds what is shown when the server cannot thumbnail it.
 */
export function imageView(file, onLoad, fileCard) {
  const img = h("img", { class: "media", alt: file.name, dataset: { testid: "message-image" } });
  const link = h("a", { class: "media-link", href: "#", "aria-label": t("media.open_image", { name: file.name }), title: t("media.open_full") }, img);
  const caption = h("span", { class: "file-caption muted small" }, `${file.name} · ${fileSize(file.size)}`);
  const figure = h("figure", { class: "file" }, link, caption);
  const failed = (error) => {
    caption.textContent = t("chat.file_failed", { name: file.name, error: describe(error, "download") });
    caption.classList.add("form-error");
  };
  img.addEventListener("load", onLoad);
  if (file.secret) { // end-to-end encrypted: the server has no thumbnail; the image decrypted here
    objectUrl(file.file_id, token(), file).then((url) => {
      img.dataset.source = "full";
      img.src = url;
    }, failed);
  } else thumbnailUrl(file.file_id, token()).then((url) => {
    img.dataset.source = "thumbnail";
    img.src = url;
  }, (error) => {
    if (error.status === 413 || error.status === 415) {
      figure.replaceChildren(fileCard());
      return;
    }
    objectUrl(file.file_id, token(), file).then((url) => {
      img.dataset.source = "full";
      img.src = url;
    }, failed);
  });
  link.addEventListener("click", (event) => {
    event.preventDefault();
    openViewer(file, img.getAttribute("src"));
  });
  return figure;
}

// --- the full-image viewer -----------------------------------------------------------------------
let viewer = null;

function buildViewer() {
  const image = h("img", { class: "viewer-image", alt: "", dataset: { testid: "image-viewer-image" } });
  const title = h("span", { class: "viewer-title" });
  const save = h("a", { class: "viewer-button", "data-i18n-title": "media.save_image", "data-i18n-aria-label": "media.save_image", dataset: { testid: "image-viewer-save" } }, mediaIcon("download"));
  const close = h("button", { type: "button", class: "viewer-button", "data-i18n-title": "common.close", "data-i18n-aria-label": "common.close", dataset: { testid: "image-viewer-close" } }, mediaIcon("close"));
  const status = h("span", { class: "viewer-status small", role: "status" });
  const dialog = h("dialog", { class: "image-viewer", "data-i18n-aria-label": "media.image", dataset: { testid: "image-viewer" } },
    h("div", { class: "viewer-bar" }, title, status, save, close), h("div", { class: "viewer-stage" }, image));
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog || event.target.classList.contains("viewer-stage")) dialog.close();
  });
  dialog.addEventListener("close", () => image.removeAttribute("src"));
  document.body.append(dialog);
  onLocaleChange(() => applyTranslations(dialog));
  return { dialog, image, title, save, status };
}

/** Show `file` over the page: its thumbnail at once (`preview`), the full image once fetched. */
function openViewer(file, preview) {
  viewer ||= buildViewer();
  const { dialog, image, title, save, status } = viewer;
  const shown = file.file_id;
  dialog.dataset.fileId = shown;
  title.textContent = file.name;
  image.alt = file.name;
  image.dataset.source = "thumbnail";
  if (preview) image.src = preview;
  else image.removeAttribute("src");
  save.removeAttribute("href");
  status.textContent = t("common.loading");
  if (!dialog.open) dialog.showModal();
  objectUrl(file.file_id, token(), file).then((url) => {
    if (dialog.dataset.fileId !== shown || !dialog.open) return;
    image.src = url;
    image.dataset.source = "full";
    save.href = url;
    save.download = file.name || "image";
    status.textContent = "";
  }, (error) => {
    if (dialog.dataset.fileId !== shown) return;
    status.textContent = describe(error, "download");
    showError(error, "download");
  });
}

// --- floating panels (emoji, stickers) -----------------------------------------------------------
/** Put the fixed-position `panel` above `anchor` (below it when there is no room), inside the window. */
export function placeBeside(panel, anchor, gap = 6) {
  const rect = anchor.getBoundingClientRect();
  const width = panel.offsetWidth;
  const height = panel.offsetHeight;
  const above = rect.top - height - gap >= 8 || rect.bottom + height + gap > innerHeight - 8;
  const top = above ? Math.max(8, rect.top - height - gap) : rect.bottom + gap;
  const left = Math.min(Math.max(8, rect.left), Math.max(8, innerWidth - width - 8));
  panel.style.top = `${Math.round(top)}px`;
  panel.style.left = `${Math.round(left)}px`;
}

let toastEl = null;
let toastTimer = null;
/** A short line of good news at the bottom of the window ("Added to your stickers"). */
export function toast(text) {
  toastEl ||= h("div", { class: "media-toast", role: "status", dataset: { testid: "toast" } });
  if (!toastEl.isConnected) document.body.append(toastEl);
  toastEl.textContent = text;
  toastEl.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (toastEl.hidden = true), 3000);
}
