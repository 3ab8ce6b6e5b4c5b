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
import { t, list } from "../i18n.js";

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
    setText(outgoing, waiting.length ? t("contacts.waiting_for", { names: list(waiting), count: waiting.length }) : "");
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
    setText(el, state.search.busy ? t("sidebar.searching") : t("sidebar.no_one"));
    return;
  }
  setText(el.querySelector(".name"), user.display_name || user.username);
  setText(el.querySelector(".sub"), `@${user.username}`);
  updateAvatar(el.querySelector(".avatar"), { url: user.avatar_url, name: user.display_name || user.username, seed: user.user_id });
  const button = el.querySelector("button");
  let label = t("contacts.add_friend");
  let disabled = false;
  if (user.user_id === state.me?.user_id) [label, disabled] = [t("contacts.thats_you"), true];
  else if (state.friends.has(user.user_id)) [label, disabled] = [t("contacts.friends_already"), true];
  else if (state.outgoing.has(user.user_id)) [label, disabled] = [t("contacts.requested"), true];
  else if (isBlocked(user.user_id)) [label, disabled] = [t("contacts.blocked"), true];
  else if (state.incoming.has(user.user_id)) label = t("contacts.accept");
  setText(button, label);
  button.disabled = disabled;
  setAttr(button, "aria-label", t("contacts.action_for", { action: label, name: user.display_name || user.username }));
}

// --- friend requests -----------------------------------------------------------------------------
function createRequest(user) {
  const accept = h("button", { type: "button", class: "small primary", dataset: { testid: "accept-request" } }, t("contacts.accept"));
  accept.addEventListener("click", () => acceptFriend(user.user_id));
  const decline = h("button", { type: "button", class: "small ghost", dataset: { testid: "decline-request" } }, t("contacts.decline"));
  decline.addEventListener("click", () => declineFriend(user.user_id));
  return h("li", { class: "row", dataset: { testid: "friend-request", userId: user.user_id } },
    userAvatar(user.user_id),
    h("span", { class: "who" }, h("span", { class: "name" }, user.display_name || user.username),
      h("span", { class: "sub muted small" }, t("contacts.wants_to_be_friends", { handle: `@${user.username}` }))),
    h("span", { class: "actions" }, accept, decline));
}

function updateRequest(el, user) {
  updateUserAvatar(el.querySelector(".avatar"), user.user_id);
  el.querySelector('[data-testid="accept-request"]').setAttribute("aria-label", t("contacts.accept_who", { name: user.username }));
  el.querySelector('[data-testid="decline-request"]').setAttribute("aria-label", t("contacts.decline_who", { name: user.username }));
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
  const signature = `${conv.unread}|${conv.unreadMentions}|${waiting}|${Boolean(conv.encryptedAt)}`;
  if (badgeSlot.dataset.signature !== signature) {
    badgeSlot.dataset.signature = signature;
    const badges = [];
    if (conv.encryptedAt) {
      badges.push(h("span", { class: "e2e-lock", dataset: { testid: "conversation-lock" }, title: t("e2e.badge_title"), "aria-label": t("e2e.badge_title") }, "🔒"));
    }
    if (waiting > 0) {
      const waitingText = t("groups.waiting_to_join", { count: waiting });
      badges.push(h("span", { class: "badge requests-badge", dataset: { testid: "join-requests-badge" }, title: waitingText, "aria-label": waitingText }, `+${waiting}`));
    }
    if (conv.unreadMentions > 0) {
      badges.push(h("span", { class: "badge mention-badge", dataset: { testid: "mention-badge" }, "aria-label": t("sidebar.unread_mentions", { count: conv.unreadMentions }) }, "@"));
    }
    if (conv.unread > 0) {
      badges.push(h("span", { class: "badge", dataset: { testid: "unread-badge" }, "aria-label": t("sidebar.unread", { count: conv.unread }) }, String(conv.unread)));
    }
    badgeSlot.replaceChildren(...badges);
  }
  const parts = [title];
  if (conv.unread) parts.push(t("sidebar.unread", { count: conv.unread }));
  if (conv.unreadMentions) parts.push(t("sidebar.mentioned", { count: conv.unreadMentions }));
  setAttr(button, "aria-label", parts.join(t("common.comma")));
}

function preview(conv) {
  const message = conv.lastMessage;
  if (!message) return conv.kind === "group" ? t("sidebar.group_created") : "";
  if (message.call) return callSummary(message);
  const text = previewText(message);
  if (message.from_user_id === state.me?.user_id) return t("sidebar.preview_mine", { text });
  if (conv.kind === "group") return t("sidebar.preview_from", { name: nameOf(message.from_user_id), text });
  return text;
}

function previewText(message) {
  if (message.recalled) return t("sidebar.kind.recalled");
  if (message.encrypted && message.e2e !== "ok") return t("e2e.preview");
  if (message.burned) return t("sidebar.kind.burned");
  if (message.burn) return t("sidebar.kind.burn");
  if (message.sticker) return t("sidebar.kind.sticker");
  if (message.voice) return t("sidebar.kind.voice");
  if (message.file) return t("sidebar.kind.file_named", { kind: fileKind(message.file.content_type), name: message.file.name });
  return message.text || "";
}

function fileKind(type = "") {
  if (type.startsWith("image/")) return t("sidebar.kind.photo");
  if (type.startsWith("audio/")) return t("sidebar.kind.audio");
  if (type.startsWith("video/")) return t("sidebar.kind.video");
  return t("sidebar.kind.file");
}

// --- contacts ------------------------------------------------------------------------------------
function createContact(friend) {
  const button = h("button", { type: "button", class: "item", dataset: { testid: "contact", userId: friend.user_id } },
    h("span", { class: "avatar-wrap" }, userAvatar(friend.user_id), h("span", { class: "dot" })),
    h("span", { class: "who" }, h("span", { class: "name" }), h("span", { class: "sub muted small" })));
  button.addEventListener("click", () => openDirect(friend.user_id));
  const profile = h("button", { type: "button", class: "ghost small contact-profile", dataset: { testid: "contact-profile" } }, t("profile.profile"));
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
  setAttr(el.querySelector(".contact-profile"), "aria-label", t("profile.profile_of", { name }));
  const sub = button.querySelector(".sub");
  const seen = friend.last_seen ? t("contacts.last_seen", { ago: ago(friend.last_seen) }) : t("contacts.offline");
  const handle = `@${user.username}`;
  if (friend.online) {
    sub.replaceChildren(t("contacts.handle_online", { handle }));
  } else {
    let span = sub.querySelector('[data-testid="last-seen"]');
    if (!span) sub.replaceChildren(`${handle} · `, (span = h("span", { dataset: { testid: "last-seen" } })));
    setText(span, seen);
  }
  setAttr(button, "aria-label", t("contacts.open_chat_label", { name, status: friend.online ? t("contacts.online") : seen }));
  setAttr(button, "aria-current", state.openKey && state.convs.get(state.openKey)?.peerId === friend.user_id ? "true" : null);
}
