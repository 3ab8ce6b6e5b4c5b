// Parley as an installed app: the service worker (sw.js: the app shell offline, notifications),
// the offline banner (the saved chats stay readable, sending waits for the network), a note when
// a new version took over, the app badge, and opening a conversation from a notification
// (the worker's message, or `#c=<conversation_id>` in the address).

import { state, changed, convById } from "./store.js";
import { conn } from "./wire.js";
import { openConversation } from "./actions.js";
import { subscriptionChanged } from "./push.js";
import { h, setText } from "./dom.js";
import { t } from "./i18n.js";

const SCOPE = "/app/";
let pendingConversation = null; // asked for (#c= or a click) before it is known here
let noNetwork = !navigator.onLine; // the browser says so
let unreachable = false; // opened without reaching the gateway (not a later drop: see below)
let reached = false; // the socket opened at least once since the page loaded

export function setupPwa() {
  setOffline();
  window.addEventListener("online", () => setOffline(false));
  window.addEventListener("offline", () => setOffline(true));
  conn.onOpen(() => {
    reached = true;
    unreachable = false;
    setOffline();
  });
  conn.onClose(() => {
    if (!reached) probe();
  });
  takeConversationFromAddress();
  window.addEventListener("hashchange", takeConversationFromAddress);
  if ("serviceWorker" in navigator && location.pathname.startsWith(SCOPE)) register();

  const offlineTitle = h("strong");
  const offlineText = h("span");
  const offlineBanner = h("div", { class: "offline-banner", role: "status", dataset: { testid: "offline-banner" }, hidden: true },
    offlineTitle, " ", offlineText);
  let badge = -1;
  return function renderPwa() {
    const anchor = document.getElementById("error-banner");
    if (anchor && !offlineBanner.isConnected) anchor.before(offlineBanner);
    offlineBanner.hidden = !state.offline || state.screen !== "app";
    if (!offlineBanner.hidden) {
      setText(offlineTitle, t("pwa.offline_title")); // in the language chosen now
      setText(offlineText, t("pwa.offline_text"));
    }
    if (pendingConversation && state.screen === "app" && convById(pendingConversation)) {
      const id = pendingConversation;
      pendingConversation = null;
      openConversation(id);
    }
    let unread = 0; // conversations with unread messages, as the push service counts them
    if (state.screen === "app") for (const conv of state.convs.values()) if (conv.id && !conv.ended && conv.unread > 0) unread += 1;
    if (unread !== badge) {
      badge = unread;
      setBadge(unread);
    }
  };
}

/**
 * Offline: the browser says there is no network, or the page opened (from the worker's cache)
 * and cannot reach the gateway at all. A drop after the page was live is not offline: the
 * status says "Reconnecting…" and what is typed waits in the outbox (delivery.js), as before.
 */
function setOffline(browserOffline = noNetwork) {
  noNetwork = browserOffline;
  const offline = noNetwork || unreachable;
  if (state.offline !== offline) {
    state.offline = offline;
    changed();
  }
}

/** The socket could not open before the page was ever live: is there a network path at all? */
function probe() {
  fetch("/healthz", { cache: "no-store" }).then(
    () => false,
    () => true, // a network error: no response of any kind
  ).then((failed) => {
    if (reached) return;
    unreachable = failed;
    setOffline();
  });
}

/** While offline the open chat is read-only: the composer says why (js/views/chat.js). */
export function offlineBlock() {
  return state.offline ? t("pwa.offline_composer") : "";
}

/** `#c=<conversation_id>` (a notification's URL): opened once known, then taken out of the address. */
function takeConversationFromAddress() {
  const match = /^#c=([^&]+)/.exec(location.hash);
  if (!match) return;
  history.replaceState(null, "", location.pathname + location.search);
  askToOpen(decodeURIComponent(match[1]));
}

function askToOpen(conversationId) {
  pendingConversation = conversationId;
  changed();
}

async function register() {
  const hadWorker = Boolean(navigator.serviceWorker.controller);
  navigator.serviceWorker.addEventListener("message", (event) => {
    const data = event.data || {};
    if (data.type === "open-conversation" && data.conversation_id) askToOpen(String(data.conversation_id));
    if (data.type === "push-subscription-changed") subscriptionChanged();
  });
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (hadWorker) showUpdated(); // the first install takes over silently
  });
  try {
    await navigator.serviceWorker.register(`${SCOPE}sw.js`, { scope: SCOPE });
  } catch (error) {
    console.warn("no service worker: Parley works, but not offline", error);
  }
}

/** A new version's worker took over: what this page runs is older until it is reloaded. */
function showUpdated() {
  if (document.querySelector('[data-testid="update-banner"]')) return;
  const reload = h("button", { type: "button", class: "primary small" }, t("pwa.reload"));
  reload.addEventListener("click", () => location.reload());
  const note = h("div", { class: "update-banner", role: "status", dataset: { testid: "update-banner" } },
    h("span", {}, t("pwa.updated")), reload);
  const anchor = document.getElementById("error-banner");
  if (anchor) anchor.before(note);
  else document.body.prepend(note);
}

function setBadge(count) {
  try {
    if (count > 0 && navigator.setAppBadge) navigator.setAppBadge(count).catch(() => {});
    else if (navigator.clearAppBadge) navigator.clearAppBadge().catch(() => {});
  } catch {
    // no badge here
  }
}
