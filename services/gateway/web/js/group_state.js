// What the page knows about administering groups (docs/protocol.md "Group administration"),
// beside the groups of store.js: each group's description, avatar and settings, my mute, the
// join requests waiting for an owner or admin, invite links, and groups that ended for me
// (removed, dissolved) while their chat was open. The pushes that change these are handled
// here; session.js keeps handling group.added, member_joined/left and role_changed.
//
// Extra fields on a state.groups entry: description, avatar_url, everyone_muted,
// approval_required, member_count (GroupInfo), mutedUntil (mine, from group.member_muted),
// requests (null | [{user, requested_at}]), invites (null | [Invite]), ended ("removed" |
// "dissolved"). A conversation of an ended group carries `ended` too (hidden from the list).

import * as store from "./store.js";
import { state, changed, subscribe } from "./store.js";
import { conn } from "./wire.js";
import { forgetGroup } from "./session.js";
import { fullTime } from "./dom.js";
import { t } from "./i18n.js";

const INFO_FIELDS = ["name", "description", "avatar_url", "everyone_muted", "approval_required", "member_count"];
const MAX_TIMER_MS = 2 ** 31 - 1;

let toastFn = () => {};

/** Where group pushes that only tell something (a declined join request) are said. */
export function onGroupNotice(fn) {
  toastFn = fn;
}

export function isManager(group) {
  return group?.role === "owner" || group?.role === "admin";
}

/** Take the fields of a GroupInfo (groups.info, groups.update, group.updated) into the store. */
export function applyGroupInfo(info) {
  const group = state.groups.get(info?.group_id);
  if (!group) return null;
  for (const field of INFO_FIELDS) if (info[field] !== undefined) group[field] = info[field];
  changed();
  return group;
}

/** My membership ended (`reason`: "removed" | "dissolved"): an open chat says so; else it goes. */
export function endGroup(groupId, conversationId, reason) {
  const group = state.groups.get(groupId);
  const conv = store.convById(conversationId || group?.conversation_id);
  if (conv && state.openKey === conv.key) {
    conv.ended = reason;
    if (group) group.ended = reason;
    conv.replyTo = null;
  } else if (group) {
    forgetGroup(group);
  } else if (conv) {
    state.convs.delete(conv.key);
  }
  changed();
}

/** My mute in `group` (ISO time) while it lasts, else null. */
export function myMute(group) {
  const mine = group?.members?.find((m) => m.user_id === state.me?.user_id);
  const until = mine ? mine.muted_until : group?.mutedUntil;
  return until && new Date(until).getTime() > Date.now() ? until : null;
}

export function mutedUntil(member) {
  const until = member?.muted_until;
  return until && new Date(until).getTime() > Date.now() ? until : null;
}

/** Why I cannot write in `conv` now (a sentence), or "" when I can. */
export function sendBlock(conv) {
  if (!conv || conv.kind !== "group") return "";
  if (conv.ended === "removed") return t("groups.removed");
  if (conv.ended === "dissolved") return t("groups.dissolved");
  const group = state.groups.get(conv.groupId);
  if (!group) return "";
  const until = myMute(group);
  if (until) {
    wakeAt(until);
    return t("groups.muted_until", { time: fullTime(until) });
  }
  if (group.everyone_muted && group.role === "member") return t("groups.only_admins_send");
  return "";
}

/** Join requests waiting in `groupId` (0 when none are known, or I do not manage it). */
export function pendingRequests(groupId) {
  const group = state.groups.get(groupId);
  return isManager(group) && group.requests ? group.requests.length : 0;
}

// --- timers: a mute ends by itself, so redraw when it does --------------------------------------
const wakes = new Map(); // ms -> timer
export function wakeAt(iso) {
  const at = new Date(iso).getTime();
  if (!at || wakes.has(at)) return;
  const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - Date.now()) + 50);
  wakes.set(at, setTimeout(() => {
    wakes.delete(at);
    changed();
  }, delay));
}

// --- loading what a manager needs ----------------------------------------------------------------
export async function loadJoinRequests(group) {
  const reply = await conn.request("groups.join_requests", { group_id: group.group_id });
  for (const request of reply.requests) store.learnUser(request.user);
  const current = state.groups.get(group.group_id);
  if (current) current.requests = reply.requests;
  changed();
  return reply.requests;
}

/**
 * Once per group entry (groups.list replaces the entries on every reconnect): a manager of a
 * group that asks for approval learns what waits, for the badges.
 */
function fetchMissingRequests() {
  if (!state.bound) return;
  for (const group of state.groups.values()) {
    if (!isManager(group) || !group.approval_required || group.requests !== undefined || group.ended) continue;
    group.requests = null;
    loadJoinRequests(group).catch(() => {}); // not there yet, or not allowed: no badge
  }
}

/** Ended chats go for good once another conversation is opened. */
function sweepEnded() {
  for (const conv of [...state.convs.values()]) {
    if (!conv.ended || state.openKey === conv.key) continue;
    const group = state.groups.get(conv.groupId);
    if (group) forgetGroup(group);
    else state.convs.delete(conv.key);
  }
}

// --- pushes --------------------------------------------------------------------------------------
export function listenGroupAdmin() {
  subscribe(() => {
    sweepEnded();
    fetchMissingRequests();
  });
  conn.on("group.updated", ({ group }) => applyGroupInfo(group));
  conn.on("group.removed", ({ group_id, conversation_id }) => endGroup(group_id, conversation_id, "removed"));
  conn.on("group.dissolved", ({ group_id, conversation_id }) => endGroup(group_id, conversation_id, "dissolved"));
  conn.on("group.member_muted", ({ group_id, user_id, until }) => {
    const group = state.groups.get(group_id);
    if (!group) return;
    const member = group.members?.find((m) => m.user_id === user_id);
    if (member) member.muted_until = until || null;
    if (user_id === state.me?.user_id) group.mutedUntil = until || null;
    if (until) wakeAt(until);
    changed();
  });
  conn.on("group.join_requested", ({ group_id, user }) => {
    const group = state.groups.get(group_id);
    if (!group || !user) return;
    store.learnUser(user);
    const requests = (group.requests || []).filter((r) => r.user.user_id !== user.user_id);
    requests.push({ user, requested_at: new Date().toISOString() });
    group.requests = requests;
    changed();
  });
  conn.on("group.member_joined", ({ group_id, user_id }) => {
    const group = state.groups.get(group_id);
    if (group?.requests) group.requests = group.requests.filter((r) => r.user.user_id !== user_id);
    if (group && typeof group.member_count === "number") group.member_count += 1;
  });
  conn.on("group.member_left", ({ group_id }) => {
    const group = state.groups.get(group_id);
    if (group && typeof group.member_count === "number") group.member_count = Math.max(0, group.member_count - 1);
  });
  conn.on("group.join_declined", ({ name }) => {
    toastFn(name ? t("groups.join_declined", { name }) : t("groups.join_declined_unnamed"));
  });
  conn.on("group.role_changed", ({ group_id, user_id, role }) => {
    const group = state.groups.get(group_id);
    if (!group || user_id !== state.me?.user_id) return;
    if (role === "member") {
      group.invites = null;
      group.requests = undefined;
    }
  });
}
