// Replies: the quote a reply draws above its text (who wrote the original, its first 100
// characters or its file's name), and a click on it that brings the original into view when it is
// loaded. The composer's "replying to" bar draws the same quote (composer.js).

import { state, nameOf } from "../store.js";
import { h, icon, setText } from "../dom.js";
import { t, locale } from "../i18n.js";

/** The words of a quote: its text, else what it is (sticker, voice message), else the file's name. */
export function quoteWords(quote) {
  if (quote.text) return quote.text;
  if (quote.sticker_url) return t("quote.sticker");
  if (quote.voice) return t("quote.voice");
  if (quote.file_name) return `📎 ${quote.file_name}`;
  return t("quote.message");
}

/** Draw `message.reply_to` into the bubble's quote slot (or nothing). */
export function updateQuote(slot, message) {
  const quote = message.reply_to;
  const signature = quote ? `${quote.message_id}|${state.namesRev}|${locale()}|${quoteWords(quote)}` : "";
  if (slot.dataset.quote === signature) return;
  slot.dataset.quote = signature;
  if (!quote) {
    slot.replaceChildren();
    return;
  }
  const button = h("button", {
    type: "button", class: "quote", dataset: { testid: "reply-quote", target: quote.message_id },
    title: t("quote.show_original"),
  },
  h("span", { class: "quote-name" }, nameOf(quote.from_user_id)),
  h("span", { class: "quote-text" }, quoteWords(quote)));
  slot.replaceChildren(button);
}

/** Scroll the message `messageId` into view and flash it; false when it is not loaded here. */
export function scrollToMessage(ol, messageId) {
  const el = ol.querySelector(`li[data-message-id="${CSS.escape(messageId)}"]`);
  if (!el) return false;
  el.scrollIntoView({ block: "center", behavior: "smooth" });
  el.classList.remove("flash");
  void el.offsetWidth; // restart the animation
  el.classList.add("flash");
  return true;
}

/** The composer's bar: "Replying to <name>: <words>" and a cancel button. */
export function replyBarContent(message) {
  return [
    icon("reply"),
    h("span", { class: "quote-name" }, t("quote.replying_to", { name: nameOf(message.from_user_id) })),
    h("span", { class: "quote-text" }, quoteWords({
      text: message.text?.slice(0, 100), file_name: message.file?.name,
      sticker_url: message.sticker?.url, voice: Boolean(message.voice),
    })),
  ];
}
