// The open conversation around the messages: its header (who, online or last seen, members),
// the typing line, the composer (Enter sends, Shift+Enter starts a new line, a disappearing
// time, files picked or dropped, with an upload bar), and the back button of narrow screens.

import { state, openConv, titleOf, nameOf } from "../store.js";
import { setText, ago } from "../dom.js";
import { closeConversation, sendFiles } from "../actions.js";
import { sendMessage, typing } from "../delivery.js";
import { showError } from "../wire.js";
import { setupComposer } from "./composer.js";
import { sendBlock } from "../group_state.js";
import { t, list } from "../i18n.js";
import { offlineBlock } from "../pwa.js";
import { e2eBlock } from "./e2e.js";

export function setupChat() {
  const layout = document.getElementById("layout");
  const empty = document.getElementById("chat-empty");
  const open = document.getElementById("chat-open");
  const title = document.getElementById("chat-title");
  const subtitle = document.getElementById("chat-subtitle");
  const back = document.getElementById("back");
  const typingLine = document.getElementById("typing-indicator");
  const form = document.getElementById("composer");
  const input = document.getElementById("composer-input");
  const ttl = document.getElementById("ttl-select");
  const fileInput = document.getElementById("file-input");
  const attach = document.getElementById("attach");
  const uploadBox = document.getElementById("upload-box");
  const uploadName = document.getElementById("upload-name");
  const progress = document.getElementById("upload-progress");
  const chat = document.getElementById("chat");
  const notice = document.getElementById("composer-notice"); // why I cannot write here (groups)
  const sendButton = document.getElementById("send-button");
  const composer = setupComposer();

  function send() {
    const conv = openConv();
    const text = input.value.trim();
    if (!conv || !text || sendBlock(conv) || e2eBlock(conv)) return;
    if (text.length > 4000) {
      showError(() => t("chat.too_long", { count: 4000 }));
      return;
    }
    sendMessage(conv, { text, ttl: Number(ttl.value) || 0, ...composer.extras(conv, text) });
    composer.sent(conv);
    input.value = "";
    autosize();
    input.focus();
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  input.addEventListener("keydown", (event) => {
    if (composer.handleKey(event)) return; // picking an @mention
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  input.addEventListener("input", () => {
    autosize();
    if (input.value.trim()) typing();
  });

  function pick(files) {
    const conv = openConv();
    if (!conv || !files.length || sendBlock(conv)) return;
    sendFiles(conv, [...files], Number(ttl.value) || 0, composer.extras(conv, ""));
    composer.sent(conv);
  }
  fileInput.addEventListener("change", () => {
    pick(fileInput.files);
    fileInput.value = "";
  });
  attach.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      fileInput.click();
    }
  });
  // Drop a file anywhere on the conversation.
  let depth = 0;
  chat.addEventListener("dragenter", (event) => {
    if (!openConv() || !event.dataTransfer?.types.includes("Files")) return;
    depth += 1;
    chat.classList.add("dropping");
  });
  chat.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) chat.classList.remove("dropping");
  });
  chat.addEventListener("dragover", (event) => {
    if (openConv() && event.dataTransfer?.types.includes("Files")) event.preventDefault();
  });
  chat.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    chat.classList.remove("dropping");
    pick(event.dataTransfer?.files || []);
  });
  // Paste an image from the clipboard.
  input.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])];
    if (files.length) {
      event.preventDefault();
      pick(files);
    }
  });

  back.addEventListener("click", () => {
    closeConversation();
    document.getElementById("sidebar").querySelector('[aria-current="true"]')?.focus();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && openConv() && !document.querySelector("dialog[open]")
        && layout.classList.contains("show-chat") && matchMedia("(max-width: 699px)").matches) {
      back.click();
    }
  });

  let shown = null;
  return function renderChat() {
    const conv = openConv();
    layout.classList.toggle("show-chat", Boolean(conv));
    empty.hidden = Boolean(conv);
    open.hidden = !conv;
    if (!conv) {
      shown = null;
      return;
    }
    if (shown !== conv) {
      shown = conv;
      input.value = "";
      autosize();
      if (!matchMedia("(max-width: 699px)").matches) input.focus();
    }
    const blocked = offlineBlock() || sendBlock(conv) || e2eBlock(conv);
    composer.render(conv, Boolean(blocked));
    setText(notice, blocked);
    notice.hidden = !blocked;
    form.inert = input.disabled = sendButton.disabled = fileInput.disabled = Boolean(blocked);
    setText(title, titleOf(conv));
    setText(subtitle, describePeer(conv));
    const typists = [...conv.typing.keys()].map(nameOf);
    setText(typingLine, typists.length ? t("chat.typing", { names: list(typists), count: typists.length }) : "");
    uploadBox.hidden = !state.upload;
    if (state.upload) {
      setText(uploadName, t("chat.uploading", { name: state.upload.name }));
      progress.value = Math.round(state.upload.progress * 100);
    }
  };
}

function describePeer(conv) {
  if (conv.kind === "group") {
    if (conv.ended) return conv.ended === "dissolved" ? t("groups.dissolved_short") : t("groups.removed_short");
    const group = state.groups.get(conv.groupId);
    const count = group?.members?.length || group?.member_count;
    return count ? t("groups.member_count", { count }) : t("groups.group");
  }
  const friend = state.friends.get(conv.peerId);
  const user = state.users.get(conv.peerId);
  const handle = user ? `@${user.username}` : "";
  if (!friend) return handle;
  if (friend.online) return t("contacts.handle_online", { handle });
  return t("contacts.handle_status", { handle, status: friend.last_seen ? t("contacts.last_seen", { ago: ago(friend.last_seen) }) : t("contacts.offline") });
}
