// What the composer adds to a message besides its text: the message it replies to (a bar above
// the composer with a cancel button), burn after reading (direct chats: a toggle and how long the
// opened message lasts), and @mentions in groups (completion in mentions.js).

import { changed, openConv } from "../store.js";
import { setAttr } from "../dom.js";
import { replyBarContent } from "./quote.js";
import { mentionedIn, setupMentionCompletion } from "./mentions.js";

let input = null;

/** Answer `message` with the next message sent in its conversation. */
export function setReplyTo(conv, message) {
  conv.replyTo = message;
  changed();
  input?.focus();
}

export function setupComposer() {
  input = document.getElementById("composer-input");
  const bar = document.getElementById("reply-bar");
  const barQuote = document.getElementById("reply-bar-quote");
  const cancel = document.getElementById("reply-cancel");
  const burnBox = document.getElementById("burn-box");
  const burnToggle = document.getElementById("burn-toggle");
  const burnSelect = document.getElementById("burn-select");
  const ttl = document.getElementById("ttl-select");
  const handleMentionKey = setupMentionCompletion(input, document.getElementById("mention-list"), openConv);

  cancel.addEventListener("click", () => {
    const conv = openConv();
    if (conv) conv.replyTo = null;
    changed();
    input.focus();
  });
  input.addEventListener("keydown", (event) => {
    const conv = openConv();
    if (event.key === "Escape" && conv?.replyTo && bar.hidden === false) {
      conv.replyTo = null;
      changed();
    }
  });
  let burnOn = false;
  burnToggle.addEventListener("click", () => {
    burnOn = !burnOn;
    changed();
    if (burnOn) burnSelect.focus();
  });

  let shownReply = null;
  return {
    handleKey: handleMentionKey,

    /** replyTo, mentions and burn for a message about to be sent in `conv`. */
    extras(conv, text) {
      const extra = {};
      if (conv.replyTo?.message_id) extra.replyTo = conv.replyTo;
      if (conv.kind === "group" && text) {
        const mentions = mentionedIn(conv, text);
        if (mentions.length) extra.mentions = mentions;
      }
      if (conv.kind === "direct" && burnOn) extra.burn = Number(burnSelect.value) || 10;
      return extra;
    },

    /** The message went: the reply bar closes (burn stays on until turned off). */
    sent(conv) {
      conv.replyTo = null;
      changed();
    },

    render(conv) {
      const reply = conv.replyTo && conv.messages.has(conv.replyTo.key) ? conv.replyTo : null;
      if (!reply) conv.replyTo = null;
      bar.hidden = !reply;
      if (reply !== shownReply) {
        shownReply = reply;
        barQuote.replaceChildren(...(reply ? replyBarContent(reply) : []));
      }
      const direct = conv.kind === "direct";
      burnBox.hidden = !direct;
      const burning = direct && burnOn;
      setAttr(burnToggle, "aria-pressed", String(burning));
      burnSelect.hidden = !burning;
      ttl.disabled = burning; // burn after reading and a disappearing time do not go together
      ttl.closest(".ttl-box").hidden = burning;
      setAttr(input, "placeholder", burning ? "Burn-after-reading message…" : "Message…");
      input.classList.toggle("burning", burning);
    },
  };
}
