// What the user does: search people, befriend them, open conversations and page their history,
// recall, send files, run groups. Failures are shown in the error banner, in plain words.

import { conn, showError } from "./wire.js";
import { refreshFriends, refreshGroups, forgetGroup, token } from "./session.js";
import { markRead, sendMessage } from "./delivery.js";
import * as store from "./store.js";
import { state, changed } from "./store.js";
import { upload } from "./files.js";
import { encryptFile } from "./e2e.js";

const PAGE = 50;

/** Run `fn`; on failure show why (in words fit for `operation`) and resolve to undefined. */
async function attempt(operation, fn) {
  try {
    return await fn();
  } catch (error) {
    showError(error, operation);
    recheckSession(error);
    return undefined;
  }
}

/** `unauthorized` on a logged-in page: reconnect, so that `auth.resume` decides (a dead token
 * leads back to the login screen). */
function recheckSession(error) {
  if (error.code === "unauthorized" && state.bound) conn.drop("unauthorized");
}

// --- people --------------------------------------------------------------------------------------
export async function search(query) {
  query = query.trim().slice(0, 64);
  state.search.query = query;
  if (!query) {
    state.search.results = [];
    state.search.busy = false;
    changed();
    return;
  }
  state.search.busy = true;
  changed();
  try {
    const reply = await conn.request("users.search", { query });
    if (state.search.query !== query) return; // a newer search is under way
    for (const user of reply.users) store.learnUser(user);
    state.search.results = reply.users;
  } catch (error) {
    if (state.search.query === query) showError(error, "users.search");
  } finally {
    if (state.search.query === query) {
      state.search.busy = false;
      changed();
    }
  }
}

export function requestFriend(user) {
  return attempt("friends.request", async () => {
    try {
      await conn.request("friends.request", { user_id: user.user_id });
    } catch (error) {
      if (error.code === "conflict") refreshFriends().catch(() => {});
      throw error;
    }
    state.outgoing.set(user.user_id, user);
    changed();
    // If they had asked first, that request made us friends.
    if (state.incoming.has(user.user_id)) await refreshFriends();
  });
}

export function acceptFriend(userId) {
  return attempt("friends.accept", async () => {
    try {
      await conn.request("friends.accept", { user_id: userId });
    } finally {
      state.incoming.delete(userId);
      changed();
    }
    await refreshFriends();
  });
}

export function declineFriend(userId) {
  return attempt("friends.remove", async () => {
    await conn.request("friends.remove", { user_id: userId });
    state.incoming.delete(userId);
    changed();
  });
}

// --- conversations -------------------------------------------------------------------------------
export function openDirect(userId) {
  openConversation(store.directConv(userId).key);
}

export function openConversation(key) {
  state.openKey = key;
  const conv = store.openConv();
  changed();
  if (!conv) return;
  if (conv.id && !conv.historyLoaded) loadHistory(conv);
  if (conv.kind === "group") {
    const group = state.groups.get(conv.groupId);
    if (group && !group.members) loadMembers(group);
  }
  markRead();
}

export function closeConversation() {
  state.openKey = null;
  changed();
}

/** The newest page, or (`older`) the page above the oldest message shown. */
export async function loadHistory(conv, older = false) {
  if (!conv.id || conv.loadingOlder || !state.bound) return;
  conv.loadingOlder = true;
  changed();
  const data = { conversation_id: conv.id, limit: PAGE };
  const lowest = store.lowestSeq(conv);
  if (older && lowest) data.before_seq = lowest;
  try {
    const reply = await conn.request("history.fetch", data);
    for (const message of reply.messages) store.addMessage(message, false);
    store.learnPositions(conv, reply);
    conv.hasMore = reply.has_more && store.lowestSeq(conv) > 1;
    conv.historyLoaded = true;
    markRead();
  } catch (error) {
    if (error.code !== "disconnected") showError(error, "history.fetch");
  } finally {
    conv.loadingOlder = false;
    changed();
  }
}

export function recall(conv, message) {
  return attempt("message.recall", async () => {
    await conn.request("message.recall", { message_id: message.message_id });
    store.markRecalled(conv.id, message.message_id);
    changed();
  });
}

/** Upload each file (with a progress bar), then send it as a message (`extra`: see sendMessage). */
export async function sendFiles(conv, files, ttl, extra = {}) {
  let bar = null;
  for (const file of files) {
    // This upload's own bar: the delayed clearing of an earlier upload's (below) must not take
    // it away while this one reports progress (an upload begun within 500 ms of the last).
    bar = { name: file.name, progress: 0 };
    state.upload = bar;
    changed();
    try {
      // End-to-end encrypted: AES-256-GCM here, the server gets opaque bytes named `encrypted`;
      // the key, name, type and size go inside the message (docs/security.md).
      const sealed = conv.encryptedAt ? await encryptFile(file) : null;
      let info = await upload(sealed ? sealed.blob : file, token(), (fraction) => {
        bar.progress = fraction;
        changed();
      });
      if (sealed) {
        info = { ...info, name: file.name || "file", size: file.size, content_type: file.type || "application/octet-stream", secret: sealed.secret };
      }
      sendMessage(state.convs.get(conv.key) || conv, { file: info, ttl, ...extra });
    } catch (error) {
      showError(error, "upload");
      if (error.code === "unauthorized") conn.drop("unauthorized");
      if (state.upload === bar) state.upload = null;
      changed();
      return;
    }
  }
  const shown = bar;
  setTimeout(() => {
    if (state.upload !== shown) return; // another upload has begun: its bar stays
    state.upload = null;
    changed();
  }, 500); // let the full bar be seen
}

// --- groups --------------------------------------------------------------------------------------
/** Create a group and open it; errors are thrown for the dialog to show. */
export async function createGroup(name, memberIds) {
  const reply = await conn.request("groups.create", { name, member_ids: memberIds });
  const group = { group_id: reply.group_id, name, conversation_id: reply.conversation_id, role: "owner", members: null };
  state.groups.set(group.group_id, group);
  store.groupConv(group).lastActivity = new Date().toISOString();
  openConversation(reply.conversation_id);
  refreshGroups().catch(() => {});
}

export function loadMembers(group) {
  return attempt("groups.members", async () => {
    const reply = await conn.request("groups.members", { group_id: group.group_id });
    for (const member of reply.members) {
      const user = { user_id: member.user_id, username: member.username };
      if (member.display_name) user.display_name = member.display_name;
      if (member.avatar_url !== undefined) user.avatar_url = member.avatar_url;
      store.learnUser(user);
    }
    const current = state.groups.get(group.group_id);
    if (current) current.members = reply.members;
    const conv = store.convById(group.conversation_id);
    if (conv) conv.all += 1; // "read by N of M" counts the members
    changed();
    learnDisplayNames(reply.members);
  });
}

const looked = new Set();
/** Group members come with usernames only: look up the display names of those not known yet. */
async function learnDisplayNames(members) {
  const unknown = members.filter((m) => !state.users.get(m.user_id)?.display_name && !looked.has(m.user_id));
  for (const member of unknown.slice(0, 20)) {
    looked.add(member.user_id);
    try {
      const reply = await conn.request("users.search", { query: member.username });
      for (const user of reply.users) if (user.user_id === member.user_id) store.learnUser(user);
    } catch {
      return; // the username is shown instead
    }
  }
  if (unknown.length) changed();
}

export function addMembers(group, userIds) {
  return attempt("groups.add_members", async () => {
    await conn.request("groups.add_members", { group_id: group.group_id, user_ids: userIds });
    await loadMembers(group);
  });
}

export function leaveGroup(group) {
  return attempt("groups.leave", async () => {
    await conn.request("groups.leave", { group_id: group.group_id });
    forgetGroup(group);
    closeConversation();
  });
}

export function setRole(group, userId, role) {
  return attempt("groups.set_role", async () => {
    await conn.request("groups.set_role", { group_id: group.group_id, user_id: userId, role });
    await loadMembers(group);
  });
}
