// Notifications while Parley is closed (docs/push.md), the page's side: once logged in, and only
// where the deployment offers Web Push (`push.config` answers with a VAPID key; an error or no
// key means "not here": nothing is offered), a small banner offers to turn them on. Only its
// button asks the browser for permission (never on load). Accepting subscribes this browser with
// the push service (pushManager.subscribe -> `push.subscribe`); logging out undoes both.

import { state } from "./store.js";
import { conn, showError } from "./wire.js";
import { h, setText } from "./dom.js";
import { t, locale } from "./i18n.js";

const DISMISSED_KEY = "parley.push.dismissed"; // when "Not now" was chosen (ms)
const ASK_AGAIN_MS = 30 * 24 * 3600 * 1000;
const SUBSCRIBE_TIMEOUT_MS = 20_000; // a browser without a reachable push service never answers

let config = null; // PushConfig once asked, for this page's life
let asked = false;
let banner = null;
let statusText = null;

function supported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

function registration() {
  return navigator.serviceWorker.getRegistration(new URL("/app/", location.origin).href);
}

/** After each bind: ask push.config once; re-register an existing subscription, or offer one. */
export async function afterLogin() {
  if (!supported() || asked) return;
  asked = true;
  try {
    config = await conn.request("push.config", {});
  } catch (error) {
    config = null; // no push service here (or not yet): nothing to offer
    if (error.code === "disconnected") asked = false; // asked again at the next bind
    return;
  }
  if (!config?.vapid_public_key || !(config.providers || []).includes("webpush")) return;
  const reg = await registration();
  const subscription = await reg?.pushManager.getSubscription();
  if (subscription && Notification.permission === "granted" && sameKey(subscription, config.vapid_public_key)) {
    await register(subscription).catch(() => {});
    return;
  }
  if (Notification.permission === "denied") return;
  const dismissed = Number(localStorage.getItem(DISMISSED_KEY) || 0);
  if (Date.now() - dismissed < ASK_AGAIN_MS) return;
  showBanner();
}

/** The banner: what turning on does, and the two choices. */
function showBanner() {
  if (!banner) {
    statusText = h("span", { class: "push-text" }, t("push.offer"));
    const accept = h("button", { type: "button", class: "primary small", dataset: { testid: "push-enable" } }, t("push.enable"));
    const later = h("button", { type: "button", class: "ghost small", dataset: { testid: "push-later" } }, t("push.later"));
    accept.addEventListener("click", () => enable(accept));
    later.addEventListener("click", () => {
      localStorage.setItem(DISMISSED_KEY, String(Date.now()));
      hideBanner();
    });
    banner = h("div", { class: "push-banner", role: "region", "aria-label": t("push.banner_label"), dataset: { testid: "push-banner" } },
      statusText, accept, later);
  }
  const anchor = document.getElementById("error-banner");
  if (anchor && !banner.isConnected) anchor.after(banner);
  banner.hidden = false;
}

function hideBanner() {
  if (banner) banner.hidden = true;
}

async function enable(button) {
  button.disabled = true;
  try {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") {
      setText(statusText, t("push.blocked"));
      localStorage.setItem(DISMISSED_KEY, String(Date.now()));
      return;
    }
    const reg = await navigator.serviceWorker.ready;
    let subscription = await reg.pushManager.getSubscription();
    if (subscription && !sameKey(subscription, config.vapid_public_key)) {
      await subscription.unsubscribe();
      subscription = null;
    }
    subscription ||= await within(SUBSCRIBE_TIMEOUT_MS, reg.pushManager.subscribe({
      userVisibleOnly: true, applicationServerKey: fromBase64Url(config.vapid_public_key),
    }));
    await register(subscription);
    hideBanner();
  } catch (error) {
    showError(typeof error.code === "string" ? error : t("push.failed"), "push.subscribe");
  } finally {
    button.disabled = false;
  }
}

/** Tell the push service where to reach this device (one subscription per device). */
function register(subscription) {
  const { endpoint, keys } = subscription.toJSON();
  return conn.request("push.subscribe", {
    kind: "webpush", endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth }, locale: locale(),
  });
}

/** The browser replaced the subscription (the worker said so): the server learns the new one. */
export async function subscriptionChanged() {
  if (!supported() || !state.bound) return;
  const subscription = await (await registration())?.pushManager.getSubscription();
  if (subscription) await register(subscription).catch(() => {});
}

/**
 * Logging out: the server forgets this device's subscription (while the socket is still logged
 * in), the browser drops it, and what this account showed (notifications, badge) goes.
 */
export async function forgetPush() {
  hideBanner();
  asked = false;
  if (!supported()) return;
  if (state.bound && config?.vapid_public_key) await conn.request("push.unsubscribe", {}).catch(() => {});
  try {
    const reg = await registration();
    const subscription = await reg?.pushManager.getSubscription();
    if (subscription) await subscription.unsubscribe();
    for (const shown of (await reg?.getNotifications()) || []) shown.close();
    if (navigator.clearAppBadge) await navigator.clearAppBadge();
  } catch {
    // nothing more to undo here
  }
}

function within(ms, promise) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("no answer from the push service")), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function sameKey(subscription, key) {
  const current = subscription.options?.applicationServerKey;
  if (!current) return true; // the browser does not say: keep it
  const wanted = fromBase64Url(key);
  const have = new Uint8Array(current);
  return have.length === wanted.length && have.every((byte, i) => byte === wanted[i]);
}

function fromBase64Url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}
