// What an owner or admin does to a group, and joining one by an invite link (docs/protocol.md
// "Group administration"). Each action shows a failure in the error banner, with what the
// server's message adds where it says more than the general words (who may do what, why a link
// no longer works: errors.js describeWithDetail), and resolves to undefined; the join dialog gets
// its errors thrown instead.

import { conn, showError } from "./wire.js";
import { describeWithDetail } from "./errors.js";
import * as store from "./store.js";
import { state, changed } from "./store.js";
import { upload } from "./files.js";
import { token, refreshGroups, forgetGroup } from "./session.js";
import { loadMembers, openConversation, closeConversation } from "./actions.js";
import { applyGroupInfo, loadJoinRequests } from "./group_state.js";

/** A sentence for a failed group operation, with what the server's message says of who or why. */
export function describeGroupError(error, operation) {
  return describeWithDetail(error, operation);
}

async function attempt(operation, fn) {
  try {
    return await fn();
  } catch (error) {
    showError(() => describeGroupError(error, operation));
    if (error.code === "unauthorized" && state.bound) conn.drop("unauthorized");
    return undefined;
  }
}

/** groups.info: the group's name, description, avatar and settings, fresh. Quiet on failure. */
export async function refreshInfo(group) {
  try {
    applyGroupInfo(await conn.request("groups.info", { group_id: group.group_id }));
  } catch {
    // the list's fields stay shown
  }
}

/** groups.update with `fields` (name, description, everyone_muted, approval_required, ...). */
export function updateGroup(group, fields, operation = "groups.update") {
  return attempt(operation, async () => {
    const info = await conn.request("groups.update", { group_id: group.group_id, ...fields });
    applyGroupInfo(info);
    return info;
  });
}

/** Upload an image (POST /files, as a message's file is), have the files service make an avatar of
 * it (images.avatar), and name that in groups.update: the picture is made first, as a sticker is. */
export function setGroupAvatar(group, file) {
  return attempt("upload", async () => {
    state.upload = { name: file.name, progress: 0 };
    changed();
    try {
      const info = await upload(file, token(), (fraction) => {
        if (state.upload) state.upload.progress = fraction;
        changed();
      });
      const avatar = await conn.request("images.avatar", { file_id: info.file_id });
      return await updateGroup(group, { avatar_image_id: avatar.image_id });
    } finally {
      state.upload = null;
      changed();
    }
  });
}

export function clearGroupAvatar(group) {
  return updateGroup(group, { clear_avatar: true });
}

export function removeMember(group, userId) {
  return attempt("groups.remove_member", async () => {
    await conn.request("groups.remove_member", { group_id: group.group_id, user_id: userId });
    await loadMembers(group);
    return true;
  });
}

/** Mute `userId` for `seconds`, or unmute (seconds null). */
export function muteMember(group, userId, seconds) {
  return attempt("groups.mute", async () => {
    const until = seconds ? new Date(Date.now() + seconds * 1000).toISOString() : null;
    await conn.request("groups.mute", { group_id: group.group_id, user_id: userId, until });
    const member = state.groups.get(group.group_id)?.members?.find((m) => m.user_id === userId);
    if (member) member.muted_until = until;
    changed();
    return true;
  });
}

export function transferOwnership(group, userId) {
  return attempt("groups.transfer_ownership", async () => {
    await conn.request("groups.transfer_ownership", { group_id: group.group_id, user_id: userId });
    const current = state.groups.get(group.group_id);
    if (current) current.role = "admin";
    await loadMembers(group);
    return true;
  });
}

export function dissolveGroup(group) {
  return attempt("groups.dissolve", async () => {
    await conn.request("groups.dissolve", { group_id: group.group_id });
    forgetGroup(group);
    closeConversation();
    return true;
  });
}

// --- invite links --------------------------------------------------------------------------------
export function loadInvites(group) {
  return attempt("groups.invites.list", async () => {
    const reply = await conn.request("groups.invites.list", { group_id: group.group_id });
    const current = state.groups.get(group.group_id);
    if (current) current.invites = reply.invites;
    changed();
    return reply.invites;
  });
}

/** A new invite link; `expiresIn` seconds and `maxUses` are optional (0 or empty: none). */
export function createInvite(group, expiresIn, maxUses) {
  return attempt("groups.invites.create", async () => {
    const data = { group_id: group.group_id };
    if (expiresIn) data.expires_in_seconds = expiresIn;
    if (maxUses) data.max_uses = maxUses;
    const invite = await conn.request("groups.invites.create", data);
    const current = state.groups.get(group.group_id);
    if (current) current.invites = [invite, ...(current.invites || []).filter((i) => i.code !== invite.code)];
    changed();
    return invite;
  });
}

export function revokeInvite(group, code) {
  return attempt("groups.invites.revoke", async () => {
    await conn.request("groups.invites.revoke", { group_id: group.group_id, code });
    const current = state.groups.get(group.group_id);
    if (current?.invites) current.invites = current.invites.filter((i) => i.code !== code);
    changed();
    return true;
  });
}

/** The full link a person can open (the server's `url` is the page's path, `/#join=<code>`). */
export function inviteLink(invite) {
  return new URL(invite.url || `/#join=${invite.code}`, location.origin).href;
}

// --- join requests -------------------------------------------------------------------------------
export function refreshJoinRequests(group) {
  return attempt("groups.join_requests", () => loadJoinRequests(group));
}

function dropRequest(group, userId) {
  const current = state.groups.get(group.group_id);
  if (current?.requests) current.requests = current.requests.filter((r) => r.user.user_id !== userId);
  changed();
}

export function acceptRequest(group, userId) {
  return attempt("groups.join_requests.accept", async () => {
    try {
      await conn.request("groups.join_requests.accept", { group_id: group.group_id, user_id: userId });
    } catch (error) {
      if (error.code === "not_found") dropRequest(group, userId); // someone else answered it
      throw error;
    }
    dropRequest(group, userId);
    await loadMembers(group);
    return true;
  });
}

export function declineRequest(group, userId) {
  return attempt("groups.join_requests.decline", async () => {
    try {
      await conn.request("groups.join_requests.decline", { group_id: group.group_id, user_id: userId });
    } finally {
      dropRequest(group, userId);
    }
    return true;
  });
}

// --- joining by a link (errors are thrown: the join dialog shows them) ---------------------------
/** The invite code in a pasted link ("…/#join=<code>") or a bare code; "" when there is none. */
export function codeFrom(text) {
  const value = String(text || "").trim();
  const match = /[#&?]join=([A-Za-z0-9_-]+)/.exec(value) || /^([A-Za-z0-9_-]{8,64})$/.exec(value);
  return match ? match[1] : "";
}

export function previewInvite(code) {
  return conn.request("groups.invites.preview", { code });
}

/** groups.join; "joined" opens the group's chat. Resolves with the reply. */
export async function joinByCode(code) {
  const reply = await conn.request("groups.join", { code });
  if (reply.status === "joined") {
    await refreshGroups().catch(() => {});
    const group = state.groups.get(reply.group_id);
    const conversationId = reply.conversation_id || group?.conversation_id;
    if (group) store.groupConv(group).lastActivity ||= new Date().toISOString();
    if (conversationId && store.convById(conversationId)) openConversation(conversationId);
  }
  return reply;
}
