// Burn after reading in a bubble. The recipient sees "Tap to open" (no text, no file until
// message.open), then the content with a countdown; the sender sees their message with what
// happened to it: waiting to be opened, opened (counting down), burned.

import { state } from "../store.js";
import { h, icon, setText, setAttr, countdown, clockTime } from "../dom.js";
import { t } from "../i18n.js";
import { openBurn } from "../interactions.js";

/** "sealed" | "open" (recipient), "waiting" | "opened" | "burned" (sender), or null. */
export function burnState(message) {
  if (!message.burn && !message.burned) return null;
  const mine = message.from_user_id === state.me?.user_id;
  if (mine) return message.burned ? "burned" : message.burn?.opened_at ? "opened" : "waiting";
  return message.text === undefined && !message.file && !message.sticker ? "sealed" : "open";
}

/** Is the content of this message held back (the recipient has not opened it)? */
export function sealed(message) {
  return burnState(message) === "sealed";
}

export function updateBurn(slot, conv, message) {
  const phase = burnState(message);
  const signature = phase ? `${phase}|${message.burn?.seconds}|${Boolean(message.burn?.opened_at)}` : "";
  if (slot.dataset.phase !== signature) {
    slot.dataset.phase = signature;
    slot.replaceChildren(...(phase ? build(conv, message, phase) : []));
  }
  tickBurn(slot, message);
}

function build(conv, message, phase) {
  const seconds = message.burn?.seconds;
  if (phase === "sealed") {
    const button = h("button", { type: "button", class: "burn-open", dataset: { testid: "burn-open" } },
      icon("flame"), t("burn.tap_to_open"));
    button.addEventListener("click", () => {
      button.disabled = true;
      openBurn(conv, message).finally(() => (button.disabled = false));
    });
    if (message.burn?.opened_at) {
      return [button, h("span", { class: "burn-note muted small" }, t("burn.opened_prefix"), h("span", { class: "words" }))];
    }
    return [button, h("span", { class: "burn-note muted small" }, t("burn.disappears_after", { count: seconds }))];
  }
  return [h("span", { class: "burn-status small", dataset: { testid: "burn-status" } }, icon("flame"), h("span", { class: "words" }))];
}

/** The countdown (once a second, for the messages with a clock). */
export function tickBurn(slot, message) {
  const words = slot.querySelector(".words");
  if (!words) return;
  const phase = burnState(message);
  const burnsAt = message.burn?.burns_at;
  let text = "";
  if (phase === "burned") text = t("burn.burned");
  else if (phase === "waiting") text = t("burn.waiting", { count: message.burn.seconds });
  else if (burnsAt && phase === "sealed") text = t("burn.burns_in_lower", { time: countdown(burnsAt) });
  else if (burnsAt) text = phase === "opened" ? t("burn.opened_burns_in", { time: countdown(burnsAt) }) : t("burn.burns_in", { time: countdown(burnsAt) });
  else text = t("burn.opened");
  setText(words, text);
  setAttr(slot.firstElementChild, "title", burnsAt ? t("burn.burns_at", { time: clockTime(burnsAt) }) : null);
}
