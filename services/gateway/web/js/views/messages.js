// The message pane: the open conversation's messages in seq order, my sends that wait for their
// seq below them. Delivery state on my messages (sending → sent → delivered → read, "read by N of
// M" in groups), replies, reactions, mentions, edits, burn after reading, recalled and
// disappearing messages, files (images from their thumbnails, voice messages, audio and video
// players, other files as links), stickers (large, without a bubble),
// and older pages loaded when scrolled to the top, without the view jumping.
//
// Drawing is incremental (store.js): a change redraws the bubbles it touched; only a change of
// which messages there are walks the list (no rebuild, no redraw of unchanged bubbles); a clock
// ticks only the messages that have one.

import { state, openConv, orderedMessages, ownState, nameOf, mentionsMe } from "../store.js";
import { h, icon, setText, setAttr, shortTime, fullTime, countdown, fileSize } from "../dom.js";
import { loadHistory } from "../actions.js";
import { token } from "../session.js";
import { retry } from "../delivery.js";
import { showError } from "../wire.js";
import { objectUrl, save } from "../files.js";
import { describe } from "../errors.js";
import { callSummary } from "../calltext.js";
import { updateQuote, scrollToMessage } from "./quote.js";
import { updateReactions } from "./reactions.js";
import { updateBurn, tickBurn, burnState, sealed } from "./burn.js";
import { fillText } from "./mentions.js";
import { setupMessageActions } from "./actions.js";
import { setReplyTo } from "./composer.js";
import { userAvatar, updateUserAvatar } from "./avatar.js";
import { imageView } from "./media.js";
import { stickerView, stickerOf } from "./stickers.js";
import { voicePlayer } from "./voice.js";
import { t, locale } from "../i18n.js";
import { e2eWords } from "./e2e.js";

const STATE_TEXT = {
  sending: () => t("chat.state.sending"), sent: () => t("chat.state.sent"), delivered: () => t("chat.state.delivered"),
  read: () => t("chat.state.read"), failed: () => t("chat.state.failed"),
};
const OLDER_WHEN_WITHIN_PX = 150; // scrolled this close to the top: the next older page comes

let pinned = true; // the view follows new messages while the user is at the bottom
let list = null;

function stickToBottom() {
  if (pinned && list) list.scrollTop = list.scrollHeight;
}

export function setupMessages() {
  list = document.getElementById("message-list");
  const ol = document.getElementById("messages");
  const older = document.getElementById("load-older");
  const empty = h("p", { class: "muted small empty center", "data-i18n": "chat.no_messages" });
  list.append(empty);
  const loadOlder = () => {
    const conv = openConv();
    if (conv?.hasMore && !conv.loadingOlder) loadHistory(conv, true);
  };
  list.addEventListener("scroll", () => {
    pinned = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    if (list.scrollTop < OLDER_WHEN_WITHIN_PX) loadOlder();
  });
  older.addEventListener("click", loadOlder);
  ol.addEventListener("click", (event) => {
    const quote = event.target.closest(".quote");
    if (quote && !scrollToMessage(ol, quote.dataset.target)) {
      setAttr(quote, "title", t("chat.quote_not_loaded"));
    }
  });
  const actions = setupMessageActions(ol, openConv, setReplyTo);

  let shown = null;
  let shownLocale = locale();
  let drawn = { layout: -1, all: -1, names: -1 };
  const els = new Map(); // key -> li, for the conversation shown

  return function renderMessages() {
    const conv = openConv();
    if (conv !== shown || shownLocale !== locale()) { // another conversation, or another language: built anew
      shownLocale = locale();
      actions.hide();
      ol.replaceChildren();
      els.clear();
      shown = conv;
      drawn = { layout: -1, all: -1, names: -1 };
      pinned = true;
    }
    if (!conv) return;
    if (conv.id && !conv.historyLoaded && !conv.historyAsked && state.bound) {
      conv.historyAsked = true; // opened before its id was known (no list yet): fetch now, once
      loadHistory(conv);
    }
    older.hidden = !conv.hasMore;
    older.disabled = conv.loadingOlder;
    setText(older, conv.loadingOlder ? t("common.loading") : t("chat.load_older"));
    empty.hidden = conv.messages.size > 0 || (conv.id && !conv.historyLoaded);
    const anchor = ol.firstElementChild;
    const anchorTop = anchor ? anchor.offsetTop : 0;
    const scrollTop = list.scrollTop;

    const everything = drawn.all !== conv.all || drawn.names !== state.namesRev;
    if (drawn.layout !== conv.layout) place(ol, els, conv, everything);
    if (everything) {
      for (const [key, el] of els) updateMessage(el, conv, conv.messages.get(key));
    } else {
      for (const key of conv.dirty) {
        const el = els.get(key);
        const message = conv.messages.get(key);
        if (el && message && el.rev !== message.rev) updateMessage(el, conv, message);
      }
    }
    conv.dirty.clear();
    for (const key of conv.timed) {
      const el = els.get(key);
      if (el) tick(el, conv.messages.get(key));
    }
    drawn = { layout: conv.layout, all: conv.all, names: state.namesRev };

    if (pinned) stickToBottom();
    else if (anchor && anchor.isConnected) list.scrollTop = scrollTop + (anchor.offsetTop - anchorTop);
  };
}

/** Put the conversation's messages in order: new ones built, gone ones removed, the rest moved only if out of place. */
function place(ol, els, conv, everything) {
  const messages = orderedMessages(conv);
  const keep = new Set();
  for (const message of messages) keep.add(message.key);
  for (const [key, el] of els) {
    if (!keep.has(key)) {
      el.remove();
      els.delete(key);
    }
  }
  let cursor = ol.firstElementChild;
  let previousSender = null;
  for (const message of messages) {
    let el = els.get(message.key);
    if (!el) {
      el = createMessage(conv, message);
      els.set(message.key, el);
    }
    el.classList.toggle("run-start", message.from_user_id !== previousSender); // its sender's avatar shows
    previousSender = message.from_user_id;
    if (!everything && el.rev !== message.rev) updateMessage(el, conv, message);
    if (el !== cursor) ol.insertBefore(el, cursor);
    else cursor = cursor.nextElementSibling;
  }
}

function createMessage(conv, message) {
  const mine = message.from_user_id === state.me?.user_id;
  const bubble = h("div", { class: "bubble" });
  if (conv.kind === "group" && !mine) bubble.append(h("span", { class: "sender small" }));
  bubble.append(
    h("div", { class: "quote-slot" }),
    h("div", { class: "file-slot" }),
    h("div", { class: "burn-slot" }),
    h("div", { class: "meta small" },
      h("span", { class: "ttl", hidden: true }, icon("timer"), h("span", { class: "visually-hidden" }, t("chat.disappearing")),
        h("span", { class: "left", "aria-hidden": "true" })),
      h("span", { class: "e2e-lock", hidden: true, title: t("e2e.message_lock"), "aria-label": t("e2e.message_lock"), dataset: { testid: "e2e-lock" } }, "🔒"),
      h("span", { class: "edited", hidden: true, dataset: { testid: "edited" } }, t("chat.edited")),
      h("time", { class: "when" }),
      mine ? h("span", { class: "state", dataset: { testid: "receipt" } }) : null,
      h("span", { class: "actions" })),
  );
  const reactions = h("div", { class: "reactions", hidden: true, dataset: { testid: "reactions" } });
  const li = h("li", { class: mine ? "msg mine" : "msg", dataset: { testid: "message", mine: String(mine), key: message.key } }, bubble, reactions);
  if (conv.kind === "group" && !mine) {
    li.classList.add("with-avatar");
    li.prepend(h("span", { class: "sender-avatar", dataset: { testid: "sender-avatar" } }, userAvatar(message.from_user_id, 28)));
  }
  return li;
}

function updateMessage(el, conv, message) {
  el.rev = message.rev;
  const mine = message.from_user_id === state.me?.user_id;
  setAttr(el, "data-seq", message.seq || null);
  setAttr(el, "data-message-id", message.message_id || null);
  setAttr(el, "data-recalled", message.recalled ? "true" : null);
  setAttr(el, "data-burn", burnState(message));
  setAttr(el, "data-edited", message.edited_at ? "true" : null);
  const toMe = !mine && mentionsMe(message);
  setAttr(el, "data-mentions-me", toMe ? "true" : null);
  el.classList.toggle("mentions-me", toMe);
  el.classList.toggle("recalled", Boolean(message.recalled));
  const sender = el.querySelector(".sender");
  if (sender) setText(sender, nameOf(message.from_user_id));
  const senderAvatar = el.querySelector(".sender-avatar .avatar");
  if (senderAvatar) updateUserAvatar(senderAvatar, message.from_user_id);
  updateQuote(el.querySelector(".quote-slot"), message);

  // A file without a caption has no text element at all; a call is told in words, with an icon.
  const call = message.call && !message.recalled ? message.call : null;
  const locked = message.recalled ? "" : e2eWords(message); // end-to-end encrypted, not readable (yet)
  const words = message.recalled ? t("chat.recalled") : call ? callSummary(message) : locked || (sealed(message) ? "" : message.text || "");
  setAttr(el, "data-e2e", message.e2e || (message.encrypted ? "pending" : null));
  el.querySelector(".e2e-lock").hidden = !(message.e2e || message.encrypted);
  setAttr(el, "data-call", call ? call.outcome : null);
  el.classList.toggle("call", Boolean(call));
  const slot = el.querySelector(".file-slot");
  let text = el.querySelector(".text");
  if (!el.classList.contains("editing")) {
    if (words && !text) {
      text = h("p", { class: "text", dataset: { testid: "message-text" } });
      slot.after(text);
    } else if (!words && text) {
      text.remove();
    }
    if (text && words) fillText(text, words, message.recalled || call || locked ? null : message);
  }

  const sticker = stickerOf(message); // drawn large, without a bubble (style.css .msg.sticker)
  el.classList.toggle("sticker", Boolean(sticker));
  const fileId = sticker ? `sticker:${sticker.sticker_id}`
    : message.recalled || !message.file ? (call ? `call:${call.media}` : "") : message.file.file_id + (message.file.secret ? "#e2e" : "");
  if (slot.dataset.fileId !== fileId) {
    slot.dataset.fileId = fileId;
    slot.replaceChildren(call ? icon(call.media === "video" ? "video" : "phone")
      : sticker ? stickerView(sticker, stickToBottom) : fileId ? fileView(message.file, message.voice) : "");
  }
  updateBurn(el.querySelector(".burn-slot"), conv, message);

  el.querySelector(".edited").hidden = !message.edited_at || Boolean(message.recalled);
  setAttr(el.querySelector(".edited"), "title", message.edited_at ? t("chat.edited_at", { time: fullTime(message.edited_at) }) : null);
  tickTtl(el, message);

  const when = el.querySelector(".when");
  setText(when, shortTime(message.sent_at));
  setAttr(when, "datetime", message.sent_at);
  setAttr(when, "title", fullTime(message.sent_at));

  if (mine) updateReceipt(el, conv, message);
  updateRetry(el.querySelector(".actions"), conv, message, mine);
  updateReactions(el.querySelector(".reactions"), conv, message);
}

/** The clocks of one message (disappearing, burning), once a second. */
function tick(el, message) {
  if (!message) return;
  tickTtl(el, message);
  tickBurn(el.querySelector(".burn-slot"), message);
}

function tickTtl(el, message) {
  const ttl = el.querySelector(".ttl");
  const timed = !message.recalled && (message.expires_at || message.ttl);
  ttl.hidden = !timed;
  if (!timed) return;
  const until = message.expires_at || new Date(Date.now() + message.ttl * 1000).toISOString();
  setText(ttl.querySelector(".left"), countdown(until));
  setAttr(ttl, "title", message.expires_at ? t("chat.disappears_at", { time: fullTime(message.expires_at) }) : t("chat.disappearing"));
}

/** Sent, delivered, read; in a group "read by N of M". */
function updateReceipt(el, conv, message) {
  const { status, read, of } = ownState(conv, message);
  setAttr(el, "data-state", status);
  setAttr(el, "data-read-count", conv.kind === "group" && message.seq ? read : null);
  const stateEl = el.querySelector(".state");
  let text = STATE_TEXT[status]?.() || status;
  if (conv.kind === "group" && read) text = t("chat.state.read_by", { read, count: of });
  setText(stateEl, text);
  setAttr(stateEl, "title", message.error ? describe(message.error, "message.send") : null);
}

function updateRetry(slot, conv, message, mine) {
  const want = mine && message.state === "failed" ? "retry" : "";
  if (slot.dataset.want === want) return;
  slot.dataset.want = want;
  if (want === "retry") {
    const button = h("button", { type: "button", class: "link", dataset: { testid: "retry" } }, t("chat.try_again"));
    button.addEventListener("click", () => retry(conv, message));
    slot.replaceChildren(button);
  } else {
    slot.replaceChildren();
  }
}

// --- files ---------------------------------------------------------------------------------------
function fileView(file, voice) {
  const type = (file.content_type || "").toLowerCase();
  if (type.startsWith("image/")) return imageView(file, stickToBottom, () => fileCard(file)); // its thumbnail
  if (voice) return voicePlayer(file, voice);
  const caption = h("span", { class: "file-caption muted small" }, `${file.name} · ${fileSize(file.size)}`);
  const failed = (error) => {
    caption.textContent = t("chat.file_failed", { name: file.name, error: describe(error, "download") });
    caption.classList.add("form-error");
  };
  if (type.startsWith("audio/") || type.startsWith("video/")) {
    const video = type.startsWith("video/");
    const player = h(video ? "video" : "audio", {
      class: video ? "media" : "audio", controls: true, preload: "metadata",
      dataset: { testid: video ? "message-video" : "message-audio" }, "aria-label": file.name,
    });
    if (video) player.playsInline = true;
    player.addEventListener("loadedmetadata", stickToBottom);
    objectUrl(file.file_id, token(), file).then((url) => (player.src = url), failed);
    return h("figure", { class: "file" }, player, caption);
  }
  return h("div", { class: "file" }, fileCard(file));
}

/** A file as a link that saves it. */
function fileCard(file) {
  const link = h("a", { class: "file-link", href: "#", download: file.name, dataset: { testid: "file-link" } },
    icon("file"),
    h("span", {}, file.name), h("span", { class: "muted small" }, ` · ${fileSize(file.size)}`));
  link.addEventListener("click", (event) => {
    event.preventDefault();
    save(file.file_id, file.name, token(), file).catch((error) => showError(error, "download"));
  });
  return link;
}
