// Two small pieces of the messenger screen: a toast (a short note that goes by itself, e.g.
// "your request to join was declined", "link copied") and a confirmation dialog for what cannot
// be undone (removing a member, handing over ownership, dissolving a group). The dialog is the
// page's own <dialog>, not window.confirm, so it looks like the rest and works with the keyboard.

import { h, setText } from "../dom.js";
import { t } from "../i18n.js";

const TOAST_SHOWN_MS = 6000;
let toastEl = null;
let toastTimer = null;

function appScreen() {
  return document.getElementById("app-screen") || document.body;
}

/** Show `text` for a few seconds (in the top layer where the browser has one: above a dialog). */
export function toast(text) {
  if (!toastEl) {
    toastEl = h("div", { class: "toast", role: "status", "aria-live": "polite", dataset: { testid: "toast" } });
    if ("showPopover" in toastEl) toastEl.setAttribute("popover", "manual");
    toastEl.addEventListener("click", hideToast);
  }
  if (!toastEl.isConnected) appScreen().append(toastEl);
  setText(toastEl, text);
  toastEl.hidden = false;
  if (toastEl.popover && !toastEl.matches(":popover-open")) toastEl.showPopover();
  clearTimeout(toastTimer);
  toastTimer = setTimeout(hideToast, TOAST_SHOWN_MS);
}

function hideToast() {
  toastEl.hidden = true;
  if (toastEl.popover && toastEl.matches(":popover-open")) toastEl.hidePopover();
}

/** Ask before doing something final: resolves true when the user confirms. */
export function confirmAction({ title, text, ok = t("common.ok"), danger = true }) {
  return new Promise((resolve) => {
    const okButton = h("button", { type: "submit", value: "ok", class: danger ? "danger" : "primary", dataset: { testid: "confirm-ok" } }, ok);
    const cancel = h("button", { type: "submit", value: "cancel", dataset: { testid: "confirm-cancel" } }, t("common.cancel"));
    const dialog = h("dialog", { class: "dialog confirm-dialog", dataset: { testid: "confirm-dialog" }, "aria-label": title },
      h("form", { method: "dialog" },
        h("h2", {}, title),
        text ? h("p", { class: "muted" }, text) : null,
        h("div", { class: "dialog-actions" }, cancel, okButton)));
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    appScreen().append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
