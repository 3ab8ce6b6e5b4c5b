// The login / create-account screen. Both buttons use the same fields; Enter logs in. A language
// switch sits at the bottom (the same as in the profile).

import { login, register } from "../session.js";
import { describe } from "../errors.js";
import { state } from "../store.js";
import { setText } from "../dom.js";
import { t, locale } from "../i18n.js";
import { setupLanguageSelect } from "./language.js";

const USERNAME = /^[a-z0-9_.-]{3,32}$/;

export function setupAuth() {
  const form = document.getElementById("auth-form");
  const username = document.getElementById("auth-username");
  const password = document.getElementById("auth-password");
  const displayName = document.getElementById("auth-display-name");
  const error = document.getElementById("auth-error");
  const buttons = [document.getElementById("auth-login"), document.getElementById("auth-register")];
  setupLanguageSelect(document.getElementById("auth-language"));
  let shownError = null; // () => the sentence shown under the form, worded in the language shown
  const showProblem = (words) => {
    shownError = words;
    setText(error, words ? words() : "");
  };

  async function run(creating) {
    const name = username.value.trim().toLowerCase();
    const problem = check(name, password.value, displayName.value.trim(), creating);
    if (problem) {
      showProblem(problem.text);
      problem.field.focus();
      return;
    }
    showProblem(null);
    buttons.forEach((b) => (b.disabled = true));
    try {
      if (creating) await register(name, password.value, displayName.value.trim());
      else await login(name, password.value);
      password.value = "";
    } catch (failure) {
      const operation = creating && failure.code !== "unauthorized" ? "auth.register" : "auth.login";
      showProblem(() => describe(failure, operation));
      (failure.code === "conflict" ? username : password).focus();
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  function check(name, secret, display, creating) {
    if (!name) return { field: username, text: () => t("login.need_username") };
    if (creating && !USERNAME.test(name)) return { field: username, text: () => t("login.bad_username") };
    if (!secret) return { field: password, text: () => t("login.need_password") };
    if (creating && secret.length < 8) return { field: password, text: () => t("login.short_password") };
    if (creating && display.length > 64) return { field: displayName, text: () => t("login.long_display_name") };
    return null;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(false);
  });
  document.getElementById("auth-register").addEventListener("click", () => run(true));

  let shown = null;
  let shownLocale = locale();
  return function renderAuth() {
    if (state.screen === shown && shownLocale === locale()) return;
    if (state.screen !== shown && state.screen === "auth") shownError = state.authMessage; // why we are back here
    shown = state.screen;
    shownLocale = locale();
    if (state.screen === "auth") setText(error, shownError ? shownError() : "");
  };
}
