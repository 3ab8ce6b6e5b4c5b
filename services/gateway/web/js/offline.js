// What the page shows with no network: the last conversation list, contacts and each chat's
// recent messages, kept in localStorage (per user) as the page receives them, and put back in the
// store when the page opens before the socket is up. The live session then merges over it as
// it would over a page that had been open all along (dedup by seq, conversations.list).
// Disappearing and burn-after-reading messages are never written down; logging out deletes it.
// End-to-end encrypted messages are written as their ciphertext only (decrypted again from
// e2e_store.js's sealed copy when shown); my own ones sent from here, which have none, are left out.

import * as store from "./store.js";
import { state, subscribe } from "./store.js";

const KEY_PREFIX = "parley.offline.";
const SAVE_AFTER_MS = 1500;
const MAX_CONVERSATIONS = 30;
const MAX_MESSAGES = 30; // the newest of each conversation
const GROUP_FIELDS = ["group_id", "name", "conversation_id", "role", "description", "avatar_url", "member_count"];
const CONV_FIELDS = ["id", "kind", "peerId", "groupId", "lastSeq", "listedSeq", "lastActivity", "unread", "unreadMentions", "encryptedAt"];
const DECRYPTED = ["text", "file", "sticker", "voice", "mentions", "reply_to", "e2e", "revealed", "sealedFile", "plain"];

let saveTimer = null;

function keyOf(userId) {
  return `${KEY_PREFIX}${userId}`;
}

/** Save a while after the store changes (at most one save per SAVE_AFTER_MS), and on leaving. */
export function keepOffline() {
  subscribe(() => {
    if (!saveTimer && state.bound) saveTimer = setTimeout(save, SAVE_AFTER_MS);
  });
  window.addEventListener("pagehide", save);
}

function lasting(message) {
  return message.seq && !message.expires_at && !message.ttl && !message.burn && !message.burned
    && (!message.e2e || Boolean(message.encrypted));
}

function plain(message) {
  const { key, rev, state: sendState, error, payload, ...kept } = message;
  if (message.e2e || message.encrypted) { // no plaintext in localStorage: the envelope only
    for (const field of DECRYPTED) delete kept[field];
    if (message.sealedFile) kept.file = message.sealedFile;
    if (message.reply_to) kept.reply_to = { message_id: message.reply_to.message_id, from_user_id: message.reply_to.from_user_id };
  }
  return kept;
}

function pick(source, fields) {
  const picked = {};
  for (const field of fields) if (source[field] !== undefined) picked[field] = source[field];
  return picked;
}

export function save() {
  clearTimeout(saveTimer);
  saveTimer = null;
  if (!state.bound || !state.me) return;
  const convs = store.sortedConvs().slice(0, MAX_CONVERSATIONS).map((conv) => ({
    ...pick(conv, CONV_FIELDS),
    lastMessage: conv.lastMessage && lasting(conv.lastMessage) ? plain(conv.lastMessage) : null,
    messages: store.orderedMessages(conv).filter(lasting).slice(-MAX_MESSAGES).map(plain),
  }));
  const wanted = new Set([...state.friends.keys()]);
  for (const conv of convs) {
    if (conv.peerId) wanted.add(conv.peerId);
    for (const message of conv.messages) wanted.add(message.from_user_id);
  }
  const snapshot = {
    saved_at: new Date().toISOString(),
    users: [...wanted].map((id) => state.users.get(id)).filter(Boolean),
    friends: [...state.friends.values()].map((f) => ({ user_id: f.user_id, last_seen: f.last_seen })),
    groups: [...state.groups.values()].map((g) => pick(g, GROUP_FIELDS)),
    convs,
  };
  try {
    localStorage.setItem(keyOf(state.me.user_id), JSON.stringify(snapshot));
  } catch {
    // storage full or refused: the page works as before, only not offline
  }
}

/** Put the saved snapshot of `userId` in the store; true when there was one. */
export function restore(userId) {
  let snapshot;
  try {
    snapshot = JSON.parse(localStorage.getItem(keyOf(userId)) || "null");
  } catch {
    snapshot = null;
  }
  if (!snapshot) return false;
  for (const user of snapshot.users || []) store.learnUser(user);
  for (const friend of snapshot.friends || []) {
    state.friends.set(friend.user_id, { user_id: friend.user_id, online: false, last_seen: friend.last_seen });
  }
  for (const group of snapshot.groups || []) {
    if (!state.groups.has(group.group_id)) state.groups.set(group.group_id, { ...group, members: null });
  }
  for (const saved of snapshot.convs || []) {
    const conv = store.ensureConv(saved.id, { kind: saved.kind, peerId: saved.peerId, groupId: saved.groupId });
    for (const message of saved.messages || []) store.addMessage(message, false);
    Object.assign(conv, pick(saved, CONV_FIELDS));
    conv.lastMessage = store.latestVisible(conv) || saved.lastMessage;
    conv.lastActivity = saved.lastActivity || conv.lastMessage?.sent_at || "";
  }
  return true;
}

/** Logging out: nothing of this account stays on the device. */
export function forgetOffline(userId) {
  clearTimeout(saveTimer);
  saveTimer = null;
  if (userId) localStorage.removeItem(keyOf(userId));
}
