// The page's one connection to the gateway, and the feed of the error banner: shared by the
// session (logging in, pushes), delivery (sending, acks, read markers) and the user's actions.

import { Connection } from "./protocol.js";
import { describe } from "./errors.js";
import { state, changed } from "./store.js";

export const conn = new Connection(`${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`);

/**
 * Show the latest error in words fit for `operation`: a ProtocolError, a sentence, or a function
 * giving one. The banner words it when drawn, so a switch of language rewords it too.
 */
export function showError(error, operation = "") {
  const text = typeof error === "function" ? error : typeof error === "string" ? () => error : () => describe(error, operation);
  state.error = { text, at: Date.now() };
  changed();
}

export function clearError() {
  state.error = null;
  changed();
}
