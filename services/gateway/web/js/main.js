// Entry point: builds the views, re-renders them whenever the store changes, and shows the
// connection state and the latest error, and switches the language at once (i18n.js).
// Served by the gateway at /app/js/main.js.

import { state, subscribe, changed, sortedConvs } from "./store.js";
import { t, applyTranslations, onLocaleChange } from "./i18n.js";
import { init, logout, takeOver } from "./session.js";
import { conn, clearError } from "./wire.js";
import { setText, setAttr, h } from "./dom.js";
import { setupAuth } from "./views/auth.js";
import { setupSidebar } from "./views/sidebar.js";
import { setupChat } from "./views/chat.js";
import { setupMessages } from "./views/messages.js";
import { setupGroups } from "./views/groups.js";
import { setupCall } from "./views/call.js";
import { setupCalls } from "./calls.js";
import { setupProfile } from "./views/profile.js";
import { listenProfiles } from "./profile_state.js";
import { setupPwa } from "./pwa.js";
import { setupE2EViews } from "./views/e2e.js";

const ERROR_SHOWN_MS = 10_000;

const STATUS_TEXT = {
  idle: () => t("status.idle"),
  connecting: () => t("status.connecting"),
  reconnecting: () => t("status.reconnecting"),
  syncing: () => t("status.syncing"),
  connected: () => t("status.connected"),
  paused: () => t("status.paused"),
};

/** What the banner says, worded in the language shown now (wire.js showError). */
function errorText(error) {
  return error ? error.text() : "";
}

function setupShell() {
  const authScreen = document.getElementById("auth-screen");
  const appScreen = document.getElementById("app-screen");
  const me = document.getElementById("me");
  const username = document.getElementById("auth-username");
  const status = document.getElementById("connection-status");
  const banner = document.getElementById("error-banner");
  const bannerText = document.getElementById("error-text");
  let errorTimer = null;
  let shownError = null;
  let shownErrorText = null;
  let shownScreen = null;

  document.getElementById("logout").addEventListener("click", () => logout());
  document.getElementById("error-dismiss").addEventListener("click", () => clearError());

  return function renderShell() {
    if (shownScreen !== state.screen) {
      // Only one screen is in the document at a time: no hidden login form behind the chat,
      // no hidden chat elements behind the login form.
      shownScreen = state.screen;
      const [show, hide] = state.screen === "auth" ? [authScreen, appScreen] : [appScreen, authScreen];
      hide.remove();
      show.hidden = false;
      if (!show.isConnected) document.body.append(show);
      if (state.screen === "auth") username.focus();
    }
    setText(me, state.me?.username || "");
    renderStatus(status);

    if (state.error !== shownError) {
      shownError = state.error;
      clearTimeout(errorTimer);
      banner.hidden = !state.error;
      if (state.error) errorTimer = setTimeout(clearError, ERROR_SHOWN_MS);
    }
    const text = errorText(state.error);
    if (text !== shownErrorText) {
      shownErrorText = text;
      setText(bannerText, text);
    }
    const unread = sortedConvs().reduce((sum, conv) => sum + conv.unread, 0);
    const title = unread ? `(${unread}) Parley` : "Parley";
    if (document.title !== title) document.title = title;
  };
}

function renderStatus(el) {
  const status = state.status;
  let text = STATUS_TEXT[status]?.() || status;
  if (status === "reconnecting" && conn.retryAt > Date.now()) {
    text = t("status.reconnecting_in", { count: Math.ceil((conn.retryAt - Date.now()) / 1000) });
  }
  setAttr(el, "data-state", status);
  const action = status === "paused" ? t("status.use_here") : status === "reconnecting" ? t("status.retry_now") : "";
  if (el.dataset.text !== text || el.dataset.action !== action) {
    el.dataset.text = text;
    el.dataset.action = action;
    el.replaceChildren(text);
    if (action) {
      const button = h("button", { type: "button", class: "link small" }, action);
      button.addEventListener("click", () => (status === "paused" ? takeOver() : conn.retryNow()));
      el.append(" ", button);
    }
  }
  document.body.dataset.connection = status;
}

/** The static text of the page in the current language, now and after every switch. */
function setupTranslations() {
  // The screen not shown is out of the document (renderShell): both are translated.
  const roots = [document.getElementById("auth-screen"), document.getElementById("app-screen")];
  const translate = () => {
    for (const root of roots) applyTranslations(root);
    applyTranslations(document.body);
  };
  translate();
  onLocaleChange(() => {
    translate();
    state.namesRev += 1; // every message is drawn again
    changed();
  });
}

function start() {
  setupTranslations();
  const renders = [setupShell(), setupAuth(), setupSidebar(), setupChat(), setupMessages(), setupGroups(), setupCall(), setupProfile(), setupPwa(), setupE2EViews()];
  subscribe(() => {
    for (const render of renders) {
      try {
        render();
      } catch (error) {
        console.error("render failed", error);
      }
    }
  });
  setupCalls();
  listenProfiles();
  init();
  changed();
}

start();
