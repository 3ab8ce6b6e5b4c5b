// The page's one connection to the gateway, and the feed of the error banner: shared by the
// session (logging in, pushes), delivery (sending, acks, read markers) and the user's actions.

import { Connection } from "./protocol.js";
import { describe } from "./errors.js";
import { state, changed } from "./store.js";

export const conn = new Connection(`${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`);

/** Show the latest error (a ProtocolError, or a sentence) in words fit for `operation`. */
export function showError(error, operation = "") {
  const text = typeof error === "string" ? error : describe(error, operation);
  state.error = { text, at: Date.now() };
  changed();
  return text;
}

export function clearError() {
  state.error = null;
  changed();
}
