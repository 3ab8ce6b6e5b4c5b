// The login / create-account screen. Both buttons use the same fields; Enter logs in.

import { login, register } from "../session.js";
import { describe } from "../errors.js";
import { state } from "../store.js";
import { setText } from "../dom.js";

const USERNAME = /^[a-z0-9_.-]{3,32}$/;

export function setupAuth() {
  const form = document.getElementById("auth-form");
  const username = document.getElementById("auth-username");
  const password = document.getElementById("auth-password");
  const displayName = document.getElementById("auth-display-name");
  const error = document.getElementById("auth-error");
  const buttons = [document.getElementById("auth-login"), document.getElementById("auth-register")];

  async function run(creating) {
    const name = username.value.trim().toLowerCase();
    const problem = check(name, password.value, displayName.value.trim(), creating);
    if (problem) {
      setText(error, problem.text);
      problem.field.focus();
      return;
    }
    setText(error, "");
    buttons.forEach((b) => (b.disabled = true));
    try {
      if (creating) await register(name, password.value, displayName.value.trim());
      else await login(name, password.value);
      password.value = "";
    } catch (failure) {
      setText(error, describe(failure, creating && failure.code !== "unauthorized" ? "auth.register" : "auth.login"));
      (failure.code === "conflict" ? username : password).focus();
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  function check(name, secret, display, creating) {
    if (!name) return { field: username, text: "Please enter a username." };
    if (creating && !USERNAME.test(name)) {
      return { field: username, text: "Usernames are 3–32 characters: lower-case letters, digits and _ . -" };
    }
    if (!secret) return { field: password, text: "Please enter a password." };
    if (creating && secret.length < 8) return { field: password, text: "Passwords need at least 8 characters." };
    if (creating && display.length > 64) return { field: displayName, text: "Display names are at most 64 characters." };
    return null;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(false);
  });
  document.getElementById("auth-register").addEventListener("click", () => run(true));

  let shown = null;
  return function renderAuth() {
    if (state.screen === shown) return;
    shown = state.screen;
    if (state.screen === "auth") setText(error, state.authMessage || ""); // why we are back here
  };
}
