// The session: logging in, staying logged in across reloads (token kept, `auth.resume`),
// reconnecting and catching up (sync), and keeping the store in step with the server's pushes.

import { describe, describeClose } from "./errors.js";
import * as store from "./store.js";
import { state, changed } from "./store.js";
import { forgetAll } from "./files.js";
import { randomId } from "./dom.js";
import { conn, showError } from "./wire.js";
import { scheduleAck, markRead, markReadSoon, flushOutbox, clearOutbox } from "./delivery.js";
import { listenInteractions } from "./interactions.js";
import { keepOffline, restore, forgetOffline } from "./offline.js";
import { afterLogin, forgetPush } from "./push.js";
import { startE2E, reveal, onKeysLow, onKeysChanged, onDeviceMessage, forgetE2E, onMembershipChanged } from "./e2e.js";
import { listenE2E } from "./views/e2e.js";

const TOKEN_KEY = "parley.token";
const USER_KEY = "parley.user";
const DEVICE_KEY = "parley.device";
const TYPING_SHOWN_MS = 5000;

// --- what survives a reload ----------------------------------------------------------------------
/** One id per browser profile, so that the server keeps this browser's delivery cursors. */
export function deviceId() {
  let id = localStorage.getItem(DEVICE_KEY);
  if (!id) {
    id = randomId("web-");
    localStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

function savedUser() {
  try {
    return JSON.parse(localStorage.getItem(USER_KEY) || "null");
  } catch {
    return null;
  }
}

// --- starting, logging in and out ----------------------------------------------------------------
export function init() {
  store.setRevealer(reveal); // messages of end-to-end encrypted conversations are decrypted here (e2e.js)
  const user = savedUser();
  if (token() && user) {
    state.me = user;
    state.screen = "app";
    state.status = "connecting";
    restore(user.user_id); // the chats as last seen, readable before (or without) the network
  } else {
    state.screen = "auth";
  }
  conn.onOpen(onOpen);
  conn.onClose(onClose);
  listen();
  keepOffline();
  window.addEventListener("online", () => conn.retryNow());
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      conn.retryNow();
      markRead();
    }
  });
  setInterval(tick, 1000);
  conn.start();
  changed();
}

export async function register(username, password, displayName) {
  await conn.whenOpen();
  const data = { username, password };
  if (displayName) data.display_name = displayName;
  await conn.request("auth.register", data);
  await login(username, password);
}

export async function login(username, password) {
  await conn.whenOpen();
  const reply = await conn.request("auth.login", { username, password, device_id: deviceId() });
  const user = { user_id: reply.user_id, username: username.trim().toLowerCase() };
  if (state.me && state.me.user_id !== user.user_id) store.reset();
  localStorage.setItem(TOKEN_KEY, reply.token);
  localStorage.setItem(USER_KEY, JSON.stringify(user));
  bound(user);
}

export async function logout() {
  await forgetPush();
  await forgetE2E(state.me?.user_id, state.bound); // keys.remove, then this browser's store deleted
  try {
    if (state.bound) await conn.request("auth.logout", {});
  } catch {
    // the token is forgotten here whatever the server says
  }
  endSession(null);
  conn.stop();
  conn.start(); // a fresh, unbound socket for the next login
}

/** Back to the login screen, forgetting the token and everything shown; `message()` says why. */
function endSession(message) {
  forgetOffline(state.me?.user_id);
  forgetE2E(state.me?.user_id, false).catch(() => {});
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(USER_KEY);
  clearOutbox();
  forgetAll();
  store.reset();
  state.screen = "auth";
  state.status = "idle";
  state.authMessage = message;
  changed();
}

function setStatus(status) {
  state.status = status;
  changed();
}

function onOpen() {
  const user = savedUser();
  if (token() && user) resume(user);
}

async function resume(user) {
  try {
    const reply = await conn.request("auth.resume", { token: token(), device_id: deviceId() });
    bound({ ...user, user_id: reply.user_id });
  } catch (error) {
    if (error.code === "unauthorized" || error.code === "bad_request") endSession(() => describe(error, "auth.resume"));
    else if (error.code !== "disconnected") conn.drop(); // unavailable: try again after a backoff
  }
}

function onClose({ code }) {
  state.bound = false;
  if (code === 4401 && token()) {
    endSession(() => describeClose(4401));
    return;
  }
  if (code === 4009) {
    conn.stop(); // the newer socket holds this device; the user may take it back
    setStatus("paused");
    return;
  }
  if (state.screen === "app" && state.status !== "paused") setStatus("reconnecting");
}

/** Resume where the user left off after the page's own pause (another tab took the device). */
export function takeOver() {
  setStatus("reconnecting");
  conn.start();
}

function bound(user) {
  state.me = user;
  state.bound = true;
  state.screen = "app";
  state.authMessage = null;
  conn.resetBackoff();
  setStatus("syncing"); // until sync.done
  startE2E(user.user_id, deviceId()); // this device's Olm keys, published (docs/security.md)
  loadAll();
  flushOutbox();
  afterLogin().catch((error) => console.warn("push not offered", error));
}

async function loadAll() {
  try {
    await Promise.all([refreshFriends(), refreshGroups(), refreshConversations()]);
  } catch (error) {
    if (error.code !== "disconnected") showError(error);
  }
}

export async function refreshFriends() {
  const reply = await conn.request("friends.list", {});
  state.friends.clear();
  state.incoming.clear();
  state.outgoing.clear();
  for (const friend of reply.friends) {
    store.learnUser(friend);
    state.friends.set(friend.user_id, { user_id: friend.user_id, online: friend.online, last_seen: friend.last_seen });
  }
  for (const user of reply.incoming) {
    store.learnUser(user);
    state.incoming.set(user.user_id, user);
  }
  for (const user of reply.outgoing) {
    store.learnUser(user);
    state.outgoing.set(user.user_id, user);
  }
  changed();
}

export async function refreshGroups() {
  const reply = await conn.request("groups.list", {});
  const seen = new Set();
  for (const group of reply.groups) {
    seen.add(group.group_id);
    const known = state.groups.get(group.group_id);
    state.groups.set(group.group_id, { ...group, members: known?.members || null });
    store.groupConv(group);
  }
  for (const [groupId, group] of state.groups) if (!seen.has(groupId)) forgetGroup(group);
  changed();
}

export function forgetGroup(group) {
  state.groups.delete(group.group_id);
  const conv = store.convById(group.conversation_id);
  if (conv) state.convs.delete(conv.key);
  if (state.openKey === group.conversation_id) state.openKey = null;
  changed();
}

export async function refreshConversations() {
  const reply = await conn.request("conversations.list", {});
  for (const item of reply.conversations) store.learnListed(item);
  markRead();
  changed();
}

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    if (state.bound) refreshConversations().catch(() => {});
  }, 300);
}

// --- pushes --------------------------------------------------------------------------------------
function listen() {
  conn.on("message.new", (message) => {
    const kept = store.addMessage(message, true);
    const conv = store.convById(message.conversation_id);
    if (!conv) return;
    conv.typing.delete(message.from_user_id);
    const unknownGroup = conv.kind === "group" && !state.groups.has(conv.groupId);
    if (kept && (unknownGroup || !state.users.has(kept.from_user_id))) refreshSoon();
    scheduleAck(conv);
    if (kept && conv === store.openConv() && document.visibilityState === "visible") {
      conv.unread = 0; // being looked at: no badge meanwhile
      conv.unreadMentions = 0;
      markReadSoon();
    }
    changed();
  });
  conn.on("sync.done", () => {
    setStatus("connected");
    refreshConversations().catch(() => {});
    for (const conv of state.convs.values()) scheduleAck(conv);
  });
  conn.on("presence", ({ user_id, online, last_seen }) => {
    const friend = state.friends.get(user_id);
    if (friend) Object.assign(friend, { online, last_seen: last_seen ?? friend.last_seen });
    changed();
  });
  conn.on("typing", ({ conversation_id, user_id }) => {
    const conv = store.convById(conversation_id);
    if (conv && user_id !== state.me?.user_id) conv.typing.set(user_id, Date.now() + TYPING_SHOWN_MS);
    changed();
  });
  listenInteractions(); // edits, reactions, burn, hide, recall, receipts
  // End-to-end encryption (e2e.js): keys running low, devices that changed, history from my devices.
  conn.on("keys.low", onKeysLow);
  conn.on("keys.changed", onKeysChanged);
  conn.on("device.message", onDeviceMessage);
  listenE2E();
  conn.on("friend.request", ({ user }) => {
    store.learnUser(user);
    state.incoming.set(user.user_id, user);
    changed();
  });
  conn.on("friend.accepted", ({ user }) => {
    store.learnUser(user);
    state.outgoing.delete(user.user_id);
    refreshFriends().catch(() => {});
  });
  conn.on("group.added", (group) => {
    state.groups.set(group.group_id, { ...group, role: "member", members: null });
    store.groupConv(group).lastActivity ||= new Date().toISOString();
    refreshGroups().catch(() => {});
    refreshConversations().catch(() => {}); // an end-to-end encrypted group says so there (encrypted_at)
    changed();
  });
  const membersChanged = ({ group_id }) => {
    onMembershipChanged({ group_id }); // an encrypted group's next message goes with a new Megolm session
    const group = state.groups.get(group_id);
    if (group) group.members = null; // fetched again when shown
    changed();
  };
  conn.on("group.member_joined", membersChanged);
  conn.on("group.member_left", membersChanged);
  conn.on("group.role_changed", (change) => {
    const group = state.groups.get(change.group_id);
    if (group && change.user_id === state.me?.user_id) group.role = change.role;
    membersChanged(change);
  });
}

// --- once a second: disappearing and burning messages, typing that stopped, countdowns ----------
// Only messages with a clock are looked at (conv.timed), so a long conversation costs nothing here.
function tick() {
  let redraw = state.status === "reconnecting";
  const now = Date.now();
  for (const conv of state.convs.values()) {
    if (store.dropExpired(conv)) redraw = true;
    for (const [userId, until] of conv.typing) {
      if (until <= now) {
        conv.typing.delete(userId);
        redraw = true;
      }
    }
  }
  const open = store.openConv();
  if (open?.timed.size) redraw = true;
  if (redraw) changed();
}
