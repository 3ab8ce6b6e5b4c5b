// Profiles and blocking (docs/protocol.md "Profiles and avatars", "Blocking"): my own profile,
// the users I blocked, and the requests that change them. Names and avatars of everyone live in
// store.state.users (learnUser); this module keeps only what store.js has no place for, and
// answers the `profile.updated` push (a friend's or my own new name or picture, no reload).

import { conn, showError } from "./wire.js";
import { refreshFriends, token } from "./session.js";
import { upload } from "./files.js";
import * as store from "./store.js";
import { state, changed } from "./store.js";

export const profiles = {
  blocked: new Map(), // user_id -> UserProfile, most recently blocked first
  blocksLoaded: false,
  avatarUpload: null, // {progress 0..1} while a new picture goes up
  busy: false, // a profile.update is under way
  loadedFor: null, // the user whose profile and blocks were fetched on this binding
};

/** Register the push handler; call once at start. */
export function listenProfiles() {
  conn.on("profile.updated", ({ user }) => {
    if (!user?.user_id) return;
    store.learnUser(user);
    const blocked = profiles.blocked.get(user.user_id);
    if (blocked) Object.assign(blocked, user);
    for (const map of [state.incoming, state.outgoing]) {
      const known = map.get(user.user_id);
      if (known) Object.assign(known, user);
    }
    const found = state.search.results.find((u) => u.user_id === user.user_id);
    if (found) Object.assign(found, user);
    changed();
  });
  conn.onClose(() => {
    profiles.loadedFor = null; // fetched again once bound again (it may have changed meanwhile)
  });
}

/** Fetch my profile and my block list once per binding (called on every render: cheap). */
export function syncProfiles() {
  if (!state.bound || !state.me) {
    if (!state.me) {
      profiles.blocked.clear();
      profiles.blocksLoaded = false;
      profiles.loadedFor = null;
    }
    return;
  }
  const me = state.me.user_id;
  if (profiles.loadedFor === me) return;
  profiles.loadedFor = me;
  conn.request("profile.get", { user_id: me }).then((profile) => {
    store.learnUser(profile);
    changed();
  }, () => {});
  loadBlocks().catch(() => {});
}

/** My profile as known here: {user_id, username, display_name, avatar_url}. */
export function myProfile() {
  if (!state.me) return null;
  return { username: state.me.username, display_name: state.me.username, avatar_url: null, ...state.users.get(state.me.user_id), user_id: state.me.user_id };
}

export function isBlocked(userId) {
  return profiles.blocked.has(userId);
}

// --- profiles ------------------------------------------------------------------------------------
/** profile.get: the user as the server knows them now (learned for every view). Throws. */
export async function fetchProfile(userId) {
  const profile = await conn.request("profile.get", { user_id: userId });
  store.learnUser(profile);
  changed();
  return profile;
}

/** profile.update with `fields` ({display_name} | {avatar_file_id} | {clear_avatar: true}). Throws. */
export async function updateProfile(fields) {
  profiles.busy = true;
  changed();
  try {
    const profile = await conn.request("profile.update", fields);
    store.learnUser(profile);
    return profile;
  } finally {
    profiles.busy = false;
    changed();
  }
}

/** Upload a picture (POST /files, as attachments go), then make it my avatar. Throws. */
export async function setAvatar(file) {
  profiles.avatarUpload = { progress: 0 };
  changed();
  try {
    const info = await upload(file, token(), (fraction) => {
      profiles.avatarUpload = { progress: fraction };
      changed();
    });
    return await updateProfile({ avatar_file_id: info.file_id });
  } catch (error) {
    if (error.code === "unauthorized") conn.drop("unauthorized");
    throw error;
  } finally {
    profiles.avatarUpload = null;
    changed();
  }
}

// --- blocking ------------------------------------------------------------------------------------
export async function loadBlocks() {
  const reply = await conn.request("blocks.list", {});
  profiles.blocked.clear();
  for (const user of reply.users) {
    store.learnUser(user);
    profiles.blocked.set(user.user_id, user);
  }
  profiles.blocksLoaded = true;
  changed();
}

/** Block a user: their friendship and requests end (the server says so; refetched). Shows errors. */
export async function block(userId) {
  try {
    await conn.request("blocks.add", { user_id: userId });
  } catch (error) {
    showError(error, "blocks.add");
    return false;
  }
  const user = state.users.get(userId) || { user_id: userId };
  profiles.blocked = new Map([[userId, { ...user }], ...[...profiles.blocked].filter(([id]) => id !== userId)]);
  state.friends.delete(userId);
  state.incoming.delete(userId);
  state.outgoing.delete(userId);
  changed();
  refreshFriends().catch(() => {});
  return true;
}

export async function unblock(userId) {
  try {
    await conn.request("blocks.remove", { user_id: userId });
  } catch (error) {
    if (error.code !== "not_found") {
      showError(error, "blocks.remove");
      return false;
    }
  }
  profiles.blocked.delete(userId);
  changed();
  return true;
}
