// The list side: people search, incoming friend requests, conversations (with unread badges) and
// contacts (online dot, last seen). Every item is a real button, so Tab and Enter work.

import { state, nameOf, titleOf, sortedConvs } from "../store.js";
import { h, setText, setAttr, syncList, ago, shortTime, debounce } from "../dom.js";
import { callSummary } from "../calltext.js";
import { search, requestFriend, acceptFriend, declineFriend, openDirect, openConversation } from "../actions.js";
import { avatarElement, updateAvatar, userAvatar, updateUserAvatar, groupAvatar, updateGroupAvatar } from "./avatar.js";
import { isBlocked } from "../profile_state.js";
import { showProfile } from "./profile.js";
import { pendingRequests } from "../group_state.js";

export function setupSidebar() {
  const input = document.getElementById("search-input");
  const results = document.getElementById("search-results");
  const requestsSection = document.getElementById("requests-section");
  const requests = document.getElementById("friend-requests");
  const conversations = document.getElementById("conversations");
  const conversationsEmpty = document.getElementById("conversations-empty");
  const contacts = document.getElementById("contacts");
  const contactsEmpty = document.getElementById("contacts-empty");
  const outgoing = document.getElementById("outgoing");

  const searchSoon = debounce(() => search(input.value), 250);
  input.addEventListener("input", () => {
    if (!input.value.trim()) search("");
    else searchSoon();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") search(input.value);
    if (event.key === "Escape") {
      input.value = "";
      search("");
    }
  });

  return function renderSidebar() {
    renderSearch(input, results);
    requestsSection.hidden = state.incoming.size === 0;
    syncList(requests, [...state.incoming.values()], (u) => u.user_id, createRequest, updateRequest);
    const convs = sortedConvs();
    conversationsEmpty.hidden = convs.length > 0;
    syncList(conversations, convs, (c) => c.id, createConversation, updateConversation);
    const friends = [...state.friends.values()].sort(
      (a, b) => Number(b.online) - Number(a.online) || nameOf(a.user_id).localeCompare(nameOf(b.user_id)),
    );
    contactsEmpty.hidden = friends.length > 0;
    syncList(contacts, friends, (f) => f.user_id, createContact, updateContact);
    const waiting = [...state.outgoing.values()].map((u) => u.display_name || u.username);
    setText(outgoing, waiting.length ? `Waiting for ${waiting.join(", ")} to accept.` : "");
  };
}

// --- search --------------------------------------------------------------------------------------
function renderSearch(input, results) {
  const { query, results: users, busy } = state.search;
  results.hidden = !query;
  if (!query) {
    results.replaceChildren();
    return;
  }
  const items = users.length ? users : [{ user_id: "", none: true }];
  syncList(results, items, (u) => u.user_id || (busy ? "busy" : "none"), createResult, updateResult);
}

function createResult(user) {
  if (user.none) return h("li", { class: "muted small empty" });
  const button = h("button", { type: "button", class: "small", dataset: { testid: "add-friend" } });
  button.addEventListener("click", () => requestFriend(state.users.get(user.user_id) || user));
  return h("li", { class: "row", dataset: { testid: "search-result", userId: user.user_id } },
    avatarElement({ url: user.avatar_url, name: user.display_name || user.username, seed: user.user_id }),
    h("span", { class: "who" }, h("span", { class: "name" }), h("span", { class: "sub muted small" })),
    button);
}

function updateResult(el, user) {
  if (user.none) {
    setText(el, state.search.busy ? "Searching…" : "No one by that name.");
    return;
  }
  setText(el.querySelector(".name"), user.display_name || user.username);
  setText(el.querySelector(".sub"), `@${user.username}`);
  updateAvatar(el.querySelector(".avatar"), { url: user.avatar_url, name: user.display_name || user.username, seed: user.user_id });
  const button = el.querySelector("button");
  let label = "Add friend";
  let disabled = false;
  if (user.user_id === state.me?.user_id) [label, disabled] = ["That's you", true];
  else if (state.friends.has(user.user_id)) [label, disabled] = ["Friends ✓", true];
  else if (state.outgoing.has(user.user_id)) [label, disabled] = ["Requested", true];
  else if (isBlocked(user.user_id)) [label, disabled] = ["Blocked", true];
  else if (state.incoming.has(user.user_id)) label = "Accept";
  setText(button, label);
  button.disabled = disabled;
  setAttr(button, "aria-label", `${label}: ${user.display_name || user.username}`);
}

// --- friend requests -----------------------------------------------------------------------------
function createRequest(user) {
  const accept = h("button", { type: "button", class: "small primary", dataset: { testid: "accept-request" } }, "Accept");
  accept.addEventListener("click", () => acceptFriend(user.user_id));
  const decline = h("button", { type: "button", class: "small ghost", dataset: { testid: "decline-request" } }, "Decline");
  decline.addEventListener("click", () => declineFriend(user.user_id));
  return h("li", { class: "row", dataset: { testid: "friend-request", userId: user.user_id } },
    userAvatar(user.user_id),
    h("span", { class: "who" }, h("span", { class: "name" }, user.display_name || user.username),
      h("span", { class: "sub muted small" }, `@${user.username} wants to be friends`)),
    h("span", { class: "actions" }, accept, decline));
}

function updateRequest(el, user) {
  updateUserAvatar(el.querySelector(".avatar"), user.user_id);
  el.querySelector('[data-testid="accept-request"]').setAttribute("aria-label", `Accept ${user.username}`);
  el.querySelector('[data-testid="decline-request"]').setAttribute("aria-label", `Decline ${user.username}`);
}

// --- conversations -------------------------------------------------------------------------------
function createConversation(conv) {
  const button = h("button", { type: "button", class: "item", dataset: { testid: "conversation", conversationId: conv.id } },
    h("span", { class: "avatar-slot" }),
    h("span", { class: "who" },
      h("span", { class: "line" }, h("span", { class: "name" }), h("time", { class: "muted small when" })),
      h("span", { class: "line" }, h("span", { class: "sub muted small preview" }), h("span", { class: "badge-slot" }))));
  button.addEventListener("click", () => openConversation(conv.key));
  return h("li", {}, button);
}

function updateConversation(el, conv) {
  const button = el.firstElementChild;
  const title = titleOf(conv);
  const slot = button.querySelector(".avatar-slot");
  if (!slot.firstChild) slot.append(conv.kind === "group" ? groupAvatar(state.groups.get(conv.groupId)) : userAvatar(conv.peerId));
  if (conv.kind === "group") updateGroupAvatar(slot.firstChild, state.groups.get(conv.groupId));
  else updateUserAvatar(slot.firstChild, conv.peerId);
  setText(button.querySelector(".name"), title);
  setText(button.querySelector(".when"), shortTime(conv.lastActivity));
  setText(button.querySelector(".preview"), preview(conv));
  setAttr(button, "aria-current", state.openKey === conv.key ? "true" : null);
  const badgeSlot = button.querySelector(".badge-slot");
  const waiting = conv.kind === "group" ? pendingRequests(conv.groupId) : 0; // join requests
  const signature = `${conv.unread}|${conv.unreadMentions}|${waiting}`;
  if (badgeSlot.dataset.signature !== signature) {
    badgeSlot.dataset.signature = signature;
    const badges = [];
    if (waiting > 0) {
      badges.push(h("span", { class: "badge requests-badge", dataset: { testid: "join-requests-badge" }, title: `${waiting} waiting to join`, "aria-label": `${waiting} waiting to join` }, `+${waiting}`));
    }
    if (conv.unreadMentions > 0) {
      badges.push(h("span", { class: "badge mention-badge", dataset: { testid: "mention-badge" }, "aria-label": `${conv.unreadMentions} unread mentions of you` }, "@"));
    }
    if (conv.unread > 0) {
      badges.push(h("span", { class: "badge", dataset: { testid: "unread-badge" }, "aria-label": `${conv.unread} unread` }, String(conv.unread)));
    }
    badgeSlot.replaceChildren(...badges);
  }
  const mentions = conv.unreadMentions ? `, mentioned ${conv.unreadMentions === 1 ? "once" : `${conv.unreadMentions} times`}` : "";
  setAttr(button, "aria-label", `${title}${conv.unread ? `, ${conv.unread} unread` : ""}${mentions}`);
}

function preview(conv) {
  const message = conv.lastMessage;
  if (!message) return conv.kind === "group" ? "Group created" : "";
  const who = message.from_user_id === state.me?.user_id ? "You: " : conv.kind === "group" ? `${nameOf(message.from_user_id)}: ` : "";
  if (message.recalled) return `${who}message recalled`;
  if (message.burned) return `${who}burned`;
  if (message.burn) return `${who}burn-after-reading message`;
  if (message.call) return callSummary(message);
  if (message.sticker) return `${who}Sticker`;
  if (message.voice) return `${who}Voice message`;
  if (message.file) return `${who}${fileKind(message.file.content_type)}: ${message.file.name}`;
  return `${who}${message.text || ""}`;
}

function fileKind(type = "") {
  if (type.startsWith("image/")) return "Photo";
  if (type.startsWith("audio/")) return "Audio";
  if (type.startsWith("video/")) return "Video";
  return "File";
}

// --- contacts ------------------------------------------------------------------------------------
function createContact(friend) {
  const button = h("button", { type: "button", class: "item", dataset: { testid: "contact", userId: friend.user_id } },
    h("span", { class: "avatar-wrap" }, userAvatar(friend.user_id), h("span", { class: "dot" })),
    h("span", { class: "who" }, h("span", { class: "name" }), h("span", { class: "sub muted small" })));
  button.addEventListener("click", () => openDirect(friend.user_id));
  const profile = h("button", { type: "button", class: "ghost small contact-profile", dataset: { testid: "contact-profile" } }, "Profile");
  profile.addEventListener("click", () => showProfile(friend.user_id));
  return h("li", { class: "contact-row" }, button, profile);
}

function updateContact(el, friend) {
  const button = el.firstElementChild;
  const user = state.users.get(friend.user_id) || {};
  const name = user.display_name || user.username || "?";
  setAttr(button, "data-online", friend.online ? "true" : "false");
  setText(button.querySelector(".name"), name);
  updateUserAvatar(button.querySelector(".avatar"), friend.user_id);
  setAttr(el.querySelector(".contact-profile"), "aria-label", `Profile of ${name}`);
  const sub = button.querySelector(".sub");
  const seen = friend.last_seen ? `last seen ${ago(friend.last_seen)}` : "offline";
  if (friend.online) {
    sub.replaceChildren(`@${user.username} · online`);
  } else {
    let span = sub.querySelector('[data-testid="last-seen"]');
    if (!span) sub.replaceChildren(`@${user.username} · `, (span = h("span", { dataset: { testid: "last-seen" } })));
    setText(span, seen);
  }
  setAttr(button, "aria-label", `${name}, ${friend.online ? "online" : seen}. Open chat`);
  setAttr(button, "aria-current", state.openKey && state.convs.get(state.openKey)?.peerId === friend.user_id ? "true" : null);
}
