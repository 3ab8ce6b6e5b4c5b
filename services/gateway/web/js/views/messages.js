// The message pane: the open conversation's messages in seq order, my sends that wait for their
// seq below them. Delivery state on my messages (sending → sent → read), recalled and
// disappearing messages, files (images inline, audio and video players, other files as links),
// and "load older" to page the history upward without the view jumping.

import { state, openConv, orderedMessages, ownState, nameOf } from "../store.js";
import { h, icon, setText, setAttr, syncList, shortTime, fullTime, countdown, fileSize } from "../dom.js";
import { loadHistory, recall } from "../actions.js";
import { token } from "../session.js";
import { retry } from "../delivery.js";
import { showError } from "../wire.js";
import { objectUrl, save } from "../files.js";
import { describe } from "../errors.js";
import { callSummary } from "../calltext.js";

const RECALL_WINDOW_MS = 10 * 60 * 1000;
const STATE_TEXT = { sending: "Sending…", sent: "✓ Sent", read: "✓✓ Read", failed: "⚠ Not sent" };

let pinned = true; // the view follows new messages while the user is at the bottom
let list = null;

function stickToBottom() {
  if (pinned && list) list.scrollTop = list.scrollHeight;
}

export function setupMessages() {
  list = document.getElementById("message-list");
  const ol = document.getElementById("messages");
  const older = document.getElementById("load-older");
  const empty = h("p", { class: "muted small empty center" }, "No messages yet. Say hello!");
  list.append(empty);
  list.addEventListener("scroll", () => {
    pinned = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  });
  older.addEventListener("click", () => {
    const conv = openConv();
    if (conv) loadHistory(conv, true);
  });
  let shown = null;

  return function renderMessages() {
    const conv = openConv();
    if (conv !== shown) {
      ol.replaceChildren();
      shown = conv;
      pinned = true;
    }
    if (!conv) return;
    older.hidden = !conv.hasMore;
    older.disabled = conv.loadingOlder;
    setText(older, conv.loadingOlder ? "Loading…" : "Load older messages");
    const messages = orderedMessages(conv);
    empty.hidden = messages.length > 0 || (conv.id && !conv.historyLoaded);
    const anchor = ol.firstElementChild;
    const anchorTop = anchor ? anchor.offsetTop : 0;
    const scrollTop = list.scrollTop;
    syncList(ol, messages, (m) => m.key, (m) => createMessage(conv, m), (el, m) => updateMessage(el, conv, m));
    if (pinned) stickToBottom();
    else if (anchor && anchor.isConnected) list.scrollTop = scrollTop + (anchor.offsetTop - anchorTop);
  };
}

function createMessage(conv, message) {
  const mine = message.from_user_id === state.me?.user_id;
  const bubble = h("div", { class: "bubble" });
  if (conv.kind === "group" && !mine) bubble.append(h("span", { class: "sender small" }));
  bubble.append(
    h("div", { class: "file-slot" }),
    h("div", { class: "meta small" },
      h("span", { class: "ttl", hidden: true }, icon("timer"), h("span", { class: "visually-hidden" }, "Disappearing message"),
        h("span", { class: "left", "aria-hidden": "true" })),
      h("time", { class: "when" }),
      mine ? h("span", { class: "state" }) : null,
      h("span", { class: "actions" })),
  );
  return h("li", { class: mine ? "msg mine" : "msg", dataset: { testid: "message", mine: String(mine) } }, bubble);
}

function updateMessage(el, conv, message) {
  const mine = message.from_user_id === state.me?.user_id;
  setAttr(el, "data-seq", message.seq || null);
  setAttr(el, "data-recalled", message.recalled ? "true" : null);
  el.classList.toggle("recalled", Boolean(message.recalled));
  const sender = el.querySelector(".sender");
  if (sender) setText(sender, nameOf(message.from_user_id));

  // A file without a caption has no text element at all; a call is told in words, with an icon.
  const call = message.call && !message.recalled ? message.call : null;
  const words = message.recalled ? "message recalled" : call ? callSummary(message) : message.text || "";
  setAttr(el, "data-call", call ? call.outcome : null);
  el.classList.toggle("call", Boolean(call));
  const slot = el.querySelector(".file-slot");
  let text = el.querySelector(".text");
  if (words && !text) {
    text = h("p", { class: "text", dataset: { testid: "message-text" } });
    el.querySelector(".meta").before(text);
  } else if (!words && text) {
    text.remove();
  }
  if (text && words) setText(text, words);

  const fileId = message.recalled ? "" : message.file?.file_id || (call ? `call:${call.media}` : "");
  if (slot.dataset.fileId !== fileId) {
    slot.dataset.fileId = fileId;
    slot.replaceChildren(call ? icon(call.media === "video" ? "video" : "phone") : fileId ? fileView(message.file) : "");
  }

  const ttl = el.querySelector(".ttl");
  const timed = !message.recalled && (message.expires_at || message.ttl);
  ttl.hidden = !timed;
  if (timed) {
    const until = message.expires_at || new Date(Date.now() + message.ttl * 1000).toISOString();
    setText(ttl.querySelector(".left"), countdown(until));
    setAttr(ttl, "title", message.expires_at ? `Disappears at ${fullTime(message.expires_at)}` : "Disappearing message");
  }

  const when = el.querySelector(".when");
  setText(when, shortTime(message.sent_at));
  setAttr(when, "datetime", message.sent_at);
  setAttr(when, "title", fullTime(message.sent_at));

  if (mine) {
    const status = ownState(conv, message);
    setAttr(el, "data-state", status);
    const stateEl = el.querySelector(".state");
    setText(stateEl, STATE_TEXT[status] || status);
    setAttr(stateEl, "title", message.error || null);
  }
  updateActions(el.querySelector(".actions"), conv, message, mine);
}

function updateActions(slot, conv, message, mine) {
  const canRecall = mine && message.seq && !message.recalled && !message.call
    && Date.now() - new Date(message.sent_at).getTime() < RECALL_WINDOW_MS;
  const canRetry = mine && message.state === "failed";
  const want = canRecall ? "recall" : canRetry ? "retry" : "";
  if (slot.dataset.want === want) return;
  slot.dataset.want = want;
  if (want === "recall") {
    const button = h("button", { type: "button", class: "link", dataset: { testid: "recall" }, "aria-label": "Recall this message" }, "Recall");
    button.addEventListener("click", () => {
      button.disabled = true;
      recall(conv, message).finally(() => (button.disabled = false));
    });
    slot.replaceChildren(button);
  } else if (want === "retry") {
    const button = h("button", { type: "button", class: "link", dataset: { testid: "retry" } }, "Try again");
    button.addEventListener("click", () => retry(conv, message));
    slot.replaceChildren(button);
  } else {
    slot.replaceChildren();
  }
}

// --- files ---------------------------------------------------------------------------------------
function fileView(file) {
  const type = (file.content_type || "").toLowerCase();
  const caption = h("span", { class: "file-caption muted small" }, `${file.name} · ${fileSize(file.size)}`);
  const failed = (error) => {
    caption.textContent = `${file.name}: ${describe(error, "download")}`;
    caption.classList.add("form-error");
  };
  if (type.startsWith("image/")) {
    const img = h("img", { class: "media", alt: file.name, dataset: { testid: "message-image" } });
    const link = h("a", { class: "media-link", target: "_blank", rel: "noopener", "aria-label": `Open image ${file.name}` }, img);
    img.addEventListener("load", stickToBottom);
    objectUrl(file.file_id, token()).then((url) => {
      img.src = url;
      link.href = url;
    }, failed);
    return h("figure", { class: "file" }, link, caption);
  }
  if (type.startsWith("audio/") || type.startsWith("video/")) {
    const video = type.startsWith("video/");
    const player = h(video ? "video" : "audio", {
      class: video ? "media" : "audio", controls: true, preload: "metadata",
      dataset: { testid: video ? "message-video" : "message-audio" }, "aria-label": file.name,
    });
    if (video) player.playsInline = true;
    player.addEventListener("loadedmetadata", stickToBottom);
    objectUrl(file.file_id, token()).then((url) => (player.src = url), failed);
    return h("figure", { class: "file" }, player, caption);
  }
  const link = h("a", { class: "file-link", href: "#", download: file.name, dataset: { testid: "file-link" } },
    icon("file"),
    h("span", {}, file.name), h("span", { class: "muted small" }, ` · ${fileSize(file.size)}`));
  link.addEventListener("click", (event) => {
    event.preventDefault();
    save(file.file_id, file.name, token()).catch((error) => showError(error, "download"));
  });
  return h("div", { class: "file" }, link);
}
