// What the composer adds to a message besides its text: the message it replies to (a bar above
// the composer with a cancel button), burn after reading (direct chats: a toggle and how long the
// opened message lasts), @mentions in groups (completion in mentions.js), emoji put in at the
// caret (emoji_picker.js), stickers sent from their panel (stickers.js) and voice messages
// recorded and sent (voice.js).

import { state, changed, openConv, directConv } from "../store.js";
import { setAttr } from "../dom.js";
import { sendMessage } from "../delivery.js";
import { sendFiles } from "../actions.js";
import { replyBarContent } from "./quote.js";
import { mentionedIn, setupMentionCompletion } from "./mentions.js";
import { emojiPicker } from "./emoji_picker.js";
import { setupStickerPanel, closeStickerPanel } from "./stickers.js";
import { setupRecorder } from "./voice.js";
import { t } from "../i18n.js";

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
    if (event.key === "Escape" && emojiPicker().isOpen()) {
      event.stopPropagation(); // only the panel closes
      emojiPicker().close();
      return;
    }
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

  /** replyTo, mentions and burn for a message about to be sent in `conv`. */
  function extras(conv, text) {
    const extra = {};
    if (conv.replyTo?.message_id) extra.replyTo = conv.replyTo;
    if (conv.kind === "group" && text) {
      const mentions = mentionedIn(conv, text);
      if (mentions.length) extra.mentions = mentions;
    }
    if (conv.kind === "direct" && burnOn) extra.burn = Number(burnSelect.value) || 10;
    return extra;
  }

  // Emoji go in at the caret (replacing a selection); the panel stays open for more.
  const emojiButton = document.getElementById("emoji-button");
  const insertEmoji = (emoji) => {
    const start = input.selectionStart ?? input.value.length;
    input.setRangeText(emoji, start, input.selectionEnd ?? start, "end");
    input.focus();
    input.dispatchEvent(new Event("input", { bubbles: true })); // the box grows, "typing" goes out
  };
  emojiButton.addEventListener("click", () => emojiPicker().toggle(emojiButton, insertEmoji, { keepOpen: true }));

  // A sticker goes at once, like a message typed: answering, disappearing or burning as chosen.
  const stickerButton = document.getElementById("sticker-button");
  setupStickerPanel(stickerButton, (sticker) => {
    const conv = openConv();
    if (!conv) return;
    sendMessage(conv, { sticker, ttl: ttl.disabled ? 0 : Number(ttl.value) || 0, ...extras(conv, "") });
    conv.replyTo = null;
    changed();
  });

  // A voice message goes to the conversation it was recorded in, uploaded like a file.
  const recorder = setupRecorder({
    button: document.getElementById("voice-button"),
    form: document.getElementById("composer"),
    begin: () => openConv(),
    onRecorded(file, durationMs, conv) {
      const current = conv.kind === "direct" ? directConv(conv.peerId) : state.convs.get(conv.key) || conv;
      sendFiles(current, [file], ttl.disabled ? 0 : Number(ttl.value) || 0, { ...extras(current, ""), voice: { duration_ms: durationMs } });
      current.replyTo = null;
      changed();
    },
  });

  let shownReply = null;
  return {
    handleKey: handleMentionKey,
    extras,

    /** The message went: the reply bar closes (burn stays on until turned off). */
    sent(conv) {
      conv.replyTo = null;
      changed();
    },

    /** `blocked`: I may not send in `conv` now, so emoji, stickers and voice are disabled too. */
    render(conv, blocked) {
      const recording = recorder.context();
      const same = recording === conv || (recording?.kind === "direct" && recording.peerId === conv.peerId);
      if (recording && !same) recorder.cancel(); // another conversation was opened
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
      setAttr(input, "placeholder", burning ? t("chat.placeholder_burn") : t("chat.placeholder"));
      input.classList.toggle("burning", burning);
      emojiButton.disabled = stickerButton.disabled = blocked;
      recorder.block(blocked);
      if (blocked) {
        closeStickerPanel();
        if (emojiButton.getAttribute("aria-expanded") === "true") emojiPicker().close();
      }
    },
  };
}
