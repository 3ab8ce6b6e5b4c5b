// End-to-end encryption of direct conversations (Olm, issue 28 step one) and groups (Megolm, step
// two: see "groups: Megolm" below; docs/security.md), with
// libolm compiled to WebAssembly (vendor/dist/olm.js and olm.wasm, installed by `make
// web-vendor`). This device's Olm account and its sessions live pickled in IndexedDB
// (e2e_store.js); the server sees only the envelope {algorithm: "olm.v1", sender_key,
// ciphertexts: [{user_id, device_id, type, body}]}.
//
// - keys: published after every bind (`keys.publish`: device keys, one-time keys, a fallback
//   key, each signed), topped up on `keys.low`;
// - devices: `keys.devices` gives each user's devices; every signature is checked, each device's
//   keys are pinned when first seen (trust on first use) and a change is kept as a notice;
// - sending: one Olm session per device pair, made from a claimed one-time key (`keys.claim`,
//   signature checked), one ciphertext per device of both users (mine included but this one);
// - receiving: this device's ciphertext decrypted once, the plaintext kept sealed in IndexedDB
//   (under the ciphertext's hash and the message id) so it is shown again after a reload;
// - history for a new device of mine: `devices.send` of what this device has read, Olm-encrypted
//   to that device only; imported on `device.message`, acknowledged with `devices.ack`.
// Payload (inside the ciphertext), docs/security.md "Payload", as the Python client: {type:
// "text"|"file"|"sticker"|"voice", text?, file?: {key, nonce, sha256, name, content_type, size},
// sticker_id?, voice?: {duration_ms}, mentions?, v: 1, id, sender: {user_id, device_id},
// conversation_id, edit_of?}; a receiver checks v, sender, conversation_id and that neither the
// ciphertext nor the payload id was seen under another message (a replay).

import { conn } from "./wire.js";
import { state, changed } from "./store.js";
import * as store from "./store.js";
import { KeyStore, b64, unb64, hex, deleteStore } from "./e2e_store.js";
import { t } from "./i18n.js";

const OLM_JS = "/app/vendor/dist/olm.js";
const OLM_WASM = "/app/vendor/dist/olm.wasm";
const ALGORITHM = "olm.v1";
const MEGOLM = "megolm.v1";
const ROTATE_MESSAGES = 100; // a new outbound Megolm session after this many messages ...
const ROTATE_MS = 7 * 24 * 3600_000; // ... or this long (docs/security.md "Rotation")
const TO_DEVICE_MAX = 64; // devices.send: entries per request ...
const TO_DEVICE_BYTES = 56_000; // ... and their bodies' size, under the 64 KiB frame bound
const SIGNED = "parley-e2e-v1";
const ONE_TIME_KEYS_KEPT = 50; // published when the server holds fewer
const DEVICES_FRESH_MS = 60_000;
const HISTORY_CHUNK_BYTES = 7_500; // a chunk's plaintext under 8,000 bytes: its body under 16,000 characters

/** What the page knows of encryption here: status "off" | "loading" | "ready" | "unavailable". */
export const e2e = {
  status: "off",
  reason: null, // () => why it is unavailable, in the language shown
  keyChanges: new Map(), // user_id -> [{device_id, at}]: a pinned key changed (shown until dismissed)
  newDevices: [], // device ids of mine added since this page started: history can be shared with them
  sharing: null, // {device_id, sent, total} while history goes to a new device
  verified: new Map(), // user_id -> true when every device of theirs is verified
};

let Olm = null;
let keys = null; // KeyStore
let account = null;
let me = null; // {user_id, device_id, identity_key, signing_key}
let createdAt = 0; // when this device's Olm account was made (ms): what was sent well before is "before this device"
const CLOCK_SLACK_MS = 60_000;
let ready = null; // Promise of the engine for the current user
let startedFor = ""; // "<user_id>|<device_id>" whose engine `ready` is
const sessions = new Map(); // identity (curve25519) key -> [{session, id}], most recent first
const devices = new Map(); // user_id -> {at, list: [{user_id, device_id, identity_key, signing_key}]}
const decrypting = new Map(); // ciphertext hash -> Promise of the payload
// Megolm (groups): my outbound session per group conversation, and the inbound sessions shared
// with me, keyed "<sender identity key>|<session id>" -> {session, conversation_id, user_id, device_id}.
const outbound = new Map(); // conversation id -> {session, created, count, shared: [device keys]}
const inbound = new Map();
const pendingKeys = []; // room keys for a group not known here yet: [{content, senderKey, fromUserId}]
const members = new Map(); // group id -> {at, ids} (groups.members), dropped on membership pushes

// --- a queue: Olm sessions and the account change with every use -----------------------------------
let queue = Promise.resolve();
function serial(fn) {
  const run = queue.then(fn, fn);
  queue = run.catch(() => {});
  return run;
}

export class E2EError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code; // before_device | undecryptable | no_keys | e2e_unavailable
  }
}

// --- loading libolm --------------------------------------------------------------------------------
function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error("missing"));
    document.head.append(script);
  });
}

let olmLoading = null;
function loadOlm() {
  olmLoading ||= (async () => {
    if (!window.indexedDB || !window.crypto?.subtle) throw new E2EError("e2e_unavailable", "no_webcrypto");
    if (typeof WebAssembly === "undefined") throw new E2EError("e2e_unavailable", "no_wasm");
    try {
      await loadScript(OLM_JS);
    } catch {
      throw new E2EError("e2e_unavailable", "no_olm");
    }
    if (!window.Olm) throw new E2EError("e2e_unavailable", "no_olm");
    try {
      await window.Olm.init({ locateFile: () => OLM_WASM });
    } catch (error) {
      console.warn("libolm did not start", error);
      throw new E2EError("e2e_unavailable", "no_wasm");
    }
    return window.Olm;
  })();
  return olmLoading;
}

const REASONS = {
  no_olm: () => t("e2e.reason_no_olm"),
  no_wasm: () => t("e2e.reason_no_wasm"),
  no_webcrypto: () => t("e2e.reason_no_webcrypto"),
  no_server: () => t("e2e.reason_no_server"),
};

function unavailable(error) {
  const code = error?.message in REASONS ? error.message : "no_olm";
  e2e.status = "unavailable";
  e2e.reason = REASONS[code];
  console.warn("end-to-end encryption unavailable:", code, error);
  changed();
}

/** Start (or restart, for another user) after a bind; resolves once keys are published. */
export function startE2E(userId, deviceId) {
  if (!ready || startedFor !== `${userId}|${deviceId}`) {
    startedFor = `${userId}|${deviceId}`;
    e2e.status = "loading";
    ready = (async () => {
      Olm = await loadOlm();
      keys = await KeyStore.open(userId);
      sessions.clear();
      devices.clear();
      account = new Olm.Account();
      const pickled = await keys.get("olm", `account:${deviceId}`);
      if (pickled) account.unpickle(keys.pickleKey, pickled);
      else {
        account.create();
        await saveAccount(deviceId);
        await keys.put("meta", `created:${deviceId}`, Date.now());
      }
      createdAt = (await keys.get("meta", `created:${deviceId}`)) || 0;
      const ids = JSON.parse(account.identity_keys());
      me = { user_id: userId, device_id: deviceId, identity_key: ids.curve25519, signing_key: ids.ed25519 };
      const saved = (await keys.entries("olm")).filter(([id]) => id.startsWith(`session:${deviceId}:`));
      saved.sort((x, y) => (x[1].at || 0) - (y[1].at || 0)); // the one used last ends up first
      for (const [, value] of saved) {
        const session = new Olm.Session();
        session.unpickle(keys.pickleKey, value.pickle);
        remember(value.identity_key, session);
      }
      outbound.clear();
      inbound.clear();
      for (const [id, value] of await keys.entries("megolm")) {
        if (id.startsWith(`in:${deviceId}:`)) {
          const session = new Olm.InboundGroupSession();
          session.unpickle(keys.pickleKey, value.pickle);
          inbound.set(`${value.sender_key}|${value.session_id}`, { ...value, session, pickle: undefined });
        } else if (id.startsWith(`out:${deviceId}:`)) {
          const session = new Olm.OutboundGroupSession();
          session.unpickle(keys.pickleKey, value.pickle);
          outbound.set(value.conversation_id, { ...value, session, pickle: undefined });
        }
      }
      for (const [id, pin] of await keys.entries("pins")) {
        if (pin.changed) noteKeyChange(pin.user_id, pin.device_id, false);
        void id;
      }
      return true;
    })();
    ready.catch(unavailable);
    retryPending(); // what was shown before the engine started is decrypted once it has
  }
  return ready.then(() => publish(true)).then(() => {
    e2e.status = "ready";
    changed();
    retryPending();
  }, (error) => {
    if (e2e.status !== "unavailable") {
      if (error?.code === "unknown_type" || error?.code === "not_found" || error?.code === "bad_request") unavailable(new Error("no_server"));
      else if (error?.code !== "disconnected") console.warn("keys not published", error);
    }
  });
}

/**
 * Logging out: this device's keys leave the key directory (`keys.remove`, when `bound`) and its
 * store leaves the browser (account, sessions, pins, the plaintexts kept). Logging in again
 * makes new keys: what came before shows as "sent before this device was added".
 */
export async function forgetE2E(userId, bound) {
  const was = ready;
  ready = null;
  startedFor = "";
  if (was) {
    try {
      await was;
      if (bound) await conn.request("keys.remove", {});
    } catch {
      // not started, or the server is gone: the local store goes all the same
    }
  }
  keys?.close();
  keys = null;
  account?.free();
  account = null;
  me = null;
  createdAt = 0;
  sessions.clear();
  devices.clear();
  decrypting.clear();
  waiting.clear();
  for (const item of [...outbound.values(), ...inbound.values()]) item.session?.free();
  outbound.clear();
  inbound.clear();
  members.clear();
  pendingKeys.length = 0;
  Object.assign(e2e, { status: "off", reason: null, sharing: null, newDevices: [] });
  e2e.keyChanges.clear();
  e2e.verified.clear();
  if (userId) await deleteStore(userId);
}

export function isReady() {
  return e2e.status === "ready";
}

async function saveAccount(deviceId = me.device_id) {
  await keys.put("olm", `account:${deviceId}`, account.pickle(keys.pickleKey));
}

function remember(identityKey, session) {
  const list = sessions.get(identityKey) || [];
  const id = session.session_id();
  const rest = list.filter((s) => s.id !== id);
  sessions.set(identityKey, [{ session, id }, ...rest].slice(0, 8));
}

async function saveSession(identityKey, session) {
  await keys.put("olm", `session:${me.device_id}:${identityKey}:${session.session_id()}`, {
    identity_key: identityKey, pickle: session.pickle(keys.pickleKey), at: Date.now(),
  });
}

// --- publishing keys ---------------------------------------------------------------------------------
function signedText(...lines) {
  return [SIGNED, ...lines].join("\n");
}

/** keys.publish: the device keys (`withDevice`), one-time keys up to ONE_TIME_KEYS_KEPT, a fallback key. */
function publish(withDevice, serverCount = null) {
  return serial(async () => {
    const data = {};
    if (withDevice) {
      data.device_keys = {
        identity_key: me.identity_key, signing_key: me.signing_key,
        signature: account.sign(signedText("device", me.user_id, me.device_id, me.identity_key, me.signing_key)),
      };
    }
    let count = serverCount;
    if (count === null) {
      // The server says how many it holds in its reply; ask with the device keys first.
      const first = await conn.request("keys.publish", data);
      count = first.one_time_key_count ?? 0;
    }
    const wanted = Math.min(100, Math.max(0, ONE_TIME_KEYS_KEPT * 2 - count));
    const more = {};
    if (count < ONE_TIME_KEYS_KEPT && wanted) {
      account.generate_one_time_keys(wanted);
      const otks = JSON.parse(account.one_time_keys()).curve25519;
      more.one_time_keys = Object.entries(otks).map(([keyId, key]) => ({
        key_id: keyId, key, signature: account.sign(signedText("one_time_key", me.user_id, me.device_id, keyId, key)),
      }));
    }
    if (!(await keys.get("olm", `fallback:${me.device_id}`))) {
      account.generate_fallback_key();
      const fallback = JSON.parse(account.unpublished_fallback_key()).curve25519;
      const [[keyId, key]] = Object.entries(fallback);
      more.fallback_key = { key_id: keyId, key, signature: account.sign(signedText("fallback_key", me.user_id, me.device_id, keyId, key)) };
    }
    if (more.one_time_keys || more.fallback_key) {
      await conn.request("keys.publish", more);
      account.mark_keys_as_published();
      await saveAccount();
      if (more.fallback_key) await keys.put("olm", `fallback:${me.device_id}`, true);
    }
  });
}

/** Push `keys.low`: publish more one-time keys. */
export function onKeysLow({ one_time_key_count: count }) {
  if (e2e.status === "ready") publish(false, count ?? 0).catch((error) => console.warn("keys not topped up", error));
}

// --- devices and pins ----------------------------------------------------------------------------------
function verifySignature(signingKey, text, signature) {
  const utility = new Olm.Utility();
  try {
    utility.ed25519_verify(signingKey, text, signature);
    return true;
  } catch {
    return false;
  } finally {
    utility.free();
  }
}

function noteKeyChange(userId, deviceId, fresh = true) {
  const list = e2e.keyChanges.get(userId) || [];
  if (!list.some((c) => c.device_id === deviceId)) list.push({ device_id: deviceId, at: Date.now() });
  e2e.keyChanges.set(userId, list);
  e2e.verified.delete(userId);
  if (fresh) changed();
}

/** The user's devices with published keys, signatures checked, keys pinned (`fresh`: ask again). */
export async function devicesOf(userId, fresh = false) {
  const known = devices.get(userId);
  if (known && !fresh && Date.now() - known.at < DEVICES_FRESH_MS) return known.list;
  const reply = await conn.request("keys.devices", { user_ids: [userId] });
  const list = [];
  for (const device of reply.devices || []) {
    if (device.user_id !== userId) continue;
    const text = signedText("device", device.user_id, device.device_id, device.identity_key, device.signing_key);
    if (!verifySignature(device.signing_key, text, device.signature)) {
      console.warn("a device's keys carry a bad signature: left out", device.user_id, device.device_id);
      continue;
    }
    await pin(device);
    list.push(device);
  }
  devices.set(userId, { at: Date.now(), list });
  return list;
}

async function pin(device) {
  const id = `${device.user_id}|${device.device_id}`;
  const pinned = await keys.get("pins", id);
  if (pinned && pinned.identity_key === device.identity_key && pinned.signing_key === device.signing_key) return;
  const change = Boolean(pinned);
  await keys.put("pins", id, {
    user_id: device.user_id, device_id: device.device_id, identity_key: device.identity_key,
    signing_key: device.signing_key, verified: false, changed: change || pinned?.changed || false,
  });
  if (change && device.user_id !== me.user_id) noteKeyChange(device.user_id, device.device_id);
}

/** The notice of a changed key was seen: forget it. */
export async function dismissKeyChange(userId) {
  e2e.keyChanges.delete(userId);
  for (const [id, pinned] of await keys.entries("pins")) {
    if (pinned.user_id === userId && pinned.changed) await keys.put("pins", id, { ...pinned, changed: false });
  }
  changed();
}

/** Verified by safety number: every device of `userId` as pinned now. */
export async function markVerified(userId) {
  for (const device of await devicesOf(userId, true)) {
    const id = `${device.user_id}|${device.device_id}`;
    const pinned = await keys.get("pins", id);
    await keys.put("pins", id, { ...pinned, verified: true, changed: false });
  }
  e2e.keyChanges.delete(userId);
  e2e.verified.set(userId, true);
  changed();
}

/** Whether every device of `userId` is marked verified (and none changed since). */
export async function isVerified(userId) {
  const list = await devicesOf(userId);
  if (!list.length) return false;
  for (const device of list) {
    const pinned = await keys.get("pins", `${device.user_id}|${device.device_id}`);
    if (!pinned?.verified) return false;
  }
  return true;
}

/** The two users' signing keys, for the safety number. */
export async function signingKeys(userId) {
  return (await devicesOf(userId, true)).map((d) => d.signing_key);
}

/** This device's keys (shown in the safety panel). */
export function myDevice() {
  return me;
}

// --- sessions and Olm messages -----------------------------------------------------------------------
/** An outbound session to each device without one: one-time keys claimed, their signatures checked. */
async function ensureSessions(targets) {
  const missing = targets.filter((d) => !sessions.get(d.identity_key)?.length);
  if (!missing.length) return;
  const claimedKeys = [];
  for (let i = 0; i < missing.length; i += 100) { // keys.claim takes 1-100 devices (a big group has more)
    const reply = await conn.request("keys.claim", { devices: missing.slice(i, i + 100).map((d) => ({ user_id: d.user_id, device_id: d.device_id })) });
    claimedKeys.push(...(reply.keys || []));
  }
  for (const claimed of claimedKeys) {
    const device = missing.find((d) => d.user_id === claimed.user_id && d.device_id === claimed.device_id);
    if (!device) continue;
    const text = signedText(claimed.fallback ? "fallback_key" : "one_time_key", device.user_id, device.device_id, claimed.key_id, claimed.key);
    if (!verifySignature(device.signing_key, text, claimed.signature)) {
      console.warn("a claimed key carries a bad signature: no session", device.user_id, device.device_id);
      continue;
    }
    const session = new Olm.Session();
    session.create_outbound(account, device.identity_key, claimed.key);
    remember(device.identity_key, session);
    await saveSession(device.identity_key, session);
  }
}

function olmEncrypt(identityKey, plaintext) {
  const { session } = sessions.get(identityKey)[0];
  const message = session.encrypt(plaintext);
  return { session, message };
}

/** Decrypt one Olm message from `senderKey`: an existing session, or a new one from a pre-key message. */
async function olmDecrypt(senderKey, type, body) {
  const list = sessions.get(senderKey) || [];
  for (const { session } of list) {
    if (type === 0 && !session.matches_inbound_from(senderKey, body)) continue;
    try {
      const plaintext = session.decrypt(type, body);
      remember(senderKey, session);
      await saveSession(senderKey, session);
      return plaintext;
    } catch {
      // another session, or not decryptable
    }
  }
  if (type !== 0) throw new E2EError("undecryptable", "no session decrypts it");
  const session = new Olm.Session();
  try {
    session.create_inbound_from(account, senderKey, body);
    const plaintext = session.decrypt(type, body);
    account.remove_one_time_keys(session);
    await saveAccount();
    remember(senderKey, session);
    await saveSession(senderKey, session);
    return plaintext;
  } catch (error) {
    session.free();
    throw new E2EError("undecryptable", String(error?.message || error));
  }
}

// --- messages ------------------------------------------------------------------------------------------
/** The user ids of a direct conversation: the peer and me. */
function participants(conv) {
  return conv.peerId === state.me.user_id ? [state.me.user_id] : [conv.peerId, state.me.user_id];
}

/**
 * The envelope for `payload` to every device of the conversation but this one. Throws
 * E2EError("no_keys") when the peer has no device with keys (they cannot read it).
 */
/** The payload as sent: what the message says, and who sends it where (checked by receivers). */
function addressed(conv, payload, editOf) {
  const full = { ...payload, v: 1, id: hex(crypto.getRandomValues(new Uint8Array(16))), sender: { user_id: me.user_id, device_id: me.device_id } };
  if (conv.id) full.conversation_id = conv.id;
  if (editOf) full.edit_of = editOf;
  return full;
}

export function seal(conv, payload, editOf = null) {
  if (!ready || e2e.status === "unavailable") return Promise.reject(new E2EError("e2e_unavailable"));
  if (conv.kind === "group") return ready.then(() => serial(() => sealGroup(conv, payload, editOf)));
  return ready.then(() => serial(async () => {
    const targets = [];
    for (const userId of participants(conv)) {
      for (const device of await devicesOf(userId)) {
        if (device.user_id === me.user_id && device.device_id === me.device_id) continue;
        targets.push(device);
      }
    }
    if (!targets.some((d) => d.user_id === conv.peerId) && conv.peerId !== me.user_id) {
      throw new E2EError("no_keys", "the peer has no device with keys");
    }
    await ensureSessions(targets);
    const plaintext = JSON.stringify(addressed(conv, payload, editOf));
    const ciphertexts = [];
    for (const device of targets) {
      if (!sessions.get(device.identity_key)?.length) continue;
      const { session, message } = olmEncrypt(device.identity_key, plaintext);
      await saveSession(device.identity_key, session);
      ciphertexts.push({ user_id: device.user_id, device_id: device.device_id, type: message.type, body: message.body });
    }
    if (!ciphertexts.some((c) => c.user_id === conv.peerId) && conv.peerId !== me.user_id) {
      throw new E2EError("no_keys", "no session with the peer");
    }
    return { algorithm: ALGORITHM, sender_key: me.identity_key, ciphertexts };
  }));
}


// --- groups: Megolm (docs/security.md "Encrypted groups (step two: Megolm)") ------------------------
/** The user ids of the group's members (groups.members), fresh after a membership push. */
async function memberIds(groupId, fresh = false) {
  const known = members.get(groupId);
  if (known && !fresh && Date.now() - known.at < DEVICES_FRESH_MS) return known.ids;
  const reply = await conn.request("groups.members", { group_id: groupId });
  const ids = (reply.members || []).map((m) => m.user_id);
  members.set(groupId, { at: Date.now(), ids });
  return ids;
}

/** Every device of the group's members with published keys (signatures checked, pinned). */
async function groupDevices(groupId) {
  const ids = await memberIds(groupId, true); // asked on every send: a membership change rotates even if its push is late
  const wanted = ids.filter((id) => {
    const known = devices.get(id);
    return !known || Date.now() - known.at >= DEVICES_FRESH_MS;
  });
  if (wanted.length) {
    for (let i = 0; i < wanted.length; i += 100) {
      const reply = await conn.request("keys.devices", { user_ids: wanted.slice(i, i + 100) });
      const byUser = new Map(wanted.slice(i, i + 100).map((id) => [id, []]));
      for (const device of reply.devices || []) {
        if (!byUser.has(device.user_id)) continue;
        const text = signedText("device", device.user_id, device.device_id, device.identity_key, device.signing_key);
        if (!verifySignature(device.signing_key, text, device.signature)) continue;
        await pin(device);
        byUser.get(device.user_id).push(device);
      }
      for (const [id, list] of byUser) devices.set(id, { at: Date.now(), list });
    }
  }
  const out = [];
  for (const id of ids) for (const device of devices.get(id)?.list || []) out.push(device);
  return out;
}

function deviceTag(device) {
  return `${device.user_id}|${device.device_id}|${device.identity_key}`;
}

async function saveOutbound(convId, entry) {
  await keys.put("megolm", `out:${me.device_id}:${convId}`, {
    conversation_id: convId, created: entry.created, count: entry.count, shared: entry.shared,
    pickle: entry.session.pickle(keys.pickleKey),
  });
}

async function saveInbound(entry) {
  const { session, ...rest } = entry;
  await keys.put("megolm", `in:${me.device_id}:${entry.sender_key}:${entry.session_id}`, { ...rest, pickle: session.pickle(keys.pickleKey) });
}

/** The Olm to-device messages (`devices.send`), in requests within the 64-entry and frame bounds. */
async function sendToDevices(messages) {
  let batch = [];
  let size = 0;
  const flush = async () => {
    if (batch.length) await conn.request("devices.send", { messages: batch });
    batch = [];
    size = 0;
  };
  for (const message of messages) {
    const length = message.body.length + 200;
    if (batch.length >= TO_DEVICE_MAX || (batch.length && size + length > TO_DEVICE_BYTES)) await flush();
    batch.push(message);
    size += length;
  }
  await flush();
}

/** Share `entry`'s session key (from its current index) with `targets` as Olm room_key payloads. */
async function shareRoomKey(conv, entry, targets) {
  await ensureSessions(targets);
  const roomKey = {
    v: 1, type: "room_key", id: hex(crypto.getRandomValues(new Uint8Array(16))),
    sender: { user_id: me.user_id, device_id: me.device_id }, conversation_id: conv.id,
    session_id: entry.session.session_id(), session_key: entry.session.session_key(), index: entry.session.message_index(),
  };
  const plaintext = JSON.stringify(roomKey);
  const messages = [];
  for (const device of targets) {
    if (!sessions.get(device.identity_key)?.length) continue; // no key to claim: it cannot read the group
    const { session, message } = olmEncrypt(device.identity_key, plaintext);
    await saveSession(device.identity_key, session);
    const item = { device_id: device.device_id, sender_key: me.identity_key, type: message.type, body: message.body };
    if (device.user_id !== me.user_id) item.user_id = device.user_id;
    messages.push(item);
  }
  await sendToDevices(messages);
}

/** The outbound session for `conv`, new (and shared) when rotation says so. */
async function outboundFor(conv) {
  const targets = (await groupDevices(conv.groupId)).filter((d) => !(d.user_id === me.user_id && d.device_id === me.device_id));
  const tags = targets.map(deviceTag).sort();
  let entry = outbound.get(conv.id);
  const stale = !entry || entry.count >= ROTATE_MESSAGES || Date.now() - entry.created >= ROTATE_MS
    || entry.shared.length !== tags.length || entry.shared.some((tag, i) => tag !== tags[i]);
  if (stale) {
    entry?.session.free();
    const session = new Olm.OutboundGroupSession();
    session.create();
    entry = { session, created: Date.now(), count: 0, shared: tags };
    // My own copy, to read what this device sent (after a reload, or in an edit's quote).
    await addInbound({
      sender_key: me.identity_key, session_id: session.session_id(), session_key: session.session_key(),
      conversation_id: conv.id, user_id: me.user_id, device_id: me.device_id,
    });
    await shareRoomKey(conv, entry, targets);
    outbound.set(conv.id, entry);
    await saveOutbound(conv.id, entry);
  }
  return entry;
}

async function addInbound({ sender_key: senderKey, session_id: sessionId, session_key: sessionKey, conversation_id: convId, user_id: userId, device_id: deviceId }) {
  const key = `${senderKey}|${sessionId}`;
  const session = new Olm.InboundGroupSession();
  try {
    session.create(sessionKey);
  } catch (error) {
    session.free();
    throw new E2EError("undecryptable", `bad room key: ${error?.message || error}`);
  }
  if (session.session_id() !== sessionId) {
    session.free();
    throw new E2EError("undecryptable", "the room key is for another session");
  }
  const known = inbound.get(key);
  if (known) {
    // Keep the one that opens more (a lower first index); never change whose it is.
    if (known.conversation_id !== convId || known.user_id !== userId || known.device_id !== deviceId
      || known.session.first_known_index() <= session.first_known_index()) {
      session.free();
      return known;
    }
    known.session.free();
  }
  const entry = { sender_key: senderKey, session_id: sessionId, conversation_id: convId, user_id: userId, device_id: deviceId, session };
  inbound.set(key, entry);
  await saveInbound(entry);
  return entry;
}

async function sealGroup(conv, payload, editOf) {
  if (!conv.id || !conv.groupId) throw new E2EError("no_keys", "the group has no conversation yet");
  const entry = await outboundFor(conv);
  const ciphertext = entry.session.encrypt(JSON.stringify(addressed(conv, payload, editOf)));
  entry.count += 1;
  await saveOutbound(conv.id, entry);
  return { algorithm: MEGOLM, sender_key: me.identity_key, session_id: entry.session.session_id(), ciphertext };
}

/** A room key from another device (Olm-decrypted): kept when its sender and conversation check out. */
async function acceptRoomKey(content, senderKey, fromUserId) {
  const sender = content.sender || {};
  if (content.v !== undefined && content.v !== 1) throw new E2EError("undecryptable", "unknown room key version");
  if (fromUserId && sender.user_id !== fromUserId) throw new E2EError("undecryptable", "room key: sent by someone else");
  if (typeof content.conversation_id !== "string" || typeof content.session_id !== "string" || typeof content.session_key !== "string") {
    throw new E2EError("undecryptable", "room key: fields missing");
  }
  let list = await devicesOf(sender.user_id);
  let device = list.find((d) => d.identity_key === senderKey);
  if (!device) {
    list = await devicesOf(sender.user_id, true);
    device = list.find((d) => d.identity_key === senderKey);
  }
  if (!device || device.device_id !== sender.device_id) throw new E2EError("undecryptable", "room key: not from the sender's pinned device");
  const conv = store.convById(content.conversation_id);
  const groupId = conv?.groupId || [...state.groups.values()].find((g) => g.conversation_id === content.conversation_id)?.group_id;
  if (!groupId) { // a group this page does not know yet (its push comes by another stream): kept for later
    if (!pendingKeys.some((p) => p.content.id === content.id)) pendingKeys.push({ content, senderKey, fromUserId });
    return;
  }
  let ids = await memberIds(groupId);
  if (!ids.includes(sender.user_id)) ids = await memberIds(groupId, true);
  if (!ids.includes(sender.user_id)) throw new E2EError("undecryptable", "room key: the sender is not a member");
  await addInbound({
    sender_key: senderKey, session_id: content.session_id, session_key: content.session_key,
    conversation_id: content.conversation_id, user_id: sender.user_id, device_id: sender.device_id,
  });
}

/** Decrypt a megolm.v1 envelope: the inbound session shared with me, checks, replay of an index. */
async function openGroup(message, envelope) {
  if (!inbound.has(`${envelope.sender_key}|${envelope.session_id}`) && pendingKeys.length) {
    for (const pending of pendingKeys.splice(0)) {
      await acceptRoomKey(pending.content, pending.senderKey, pending.fromUserId).catch((error) => console.warn("a room key refused", error?.message));
    }
  }
  const entry = inbound.get(`${envelope.sender_key}|${envelope.session_id}`);
  if (!entry) throw new E2EError("waiting_key", "its room key has not come");
  let result;
  try {
    result = entry.session.decrypt(String(envelope.ciphertext || ""));
  } catch (error) {
    const text = String(error?.message || error);
    if (/UNKNOWN_MESSAGE_INDEX/.test(text)) throw new E2EError("no_key", "sent before the key I was given");
    throw new E2EError("undecryptable", text);
  }
  if (entry.conversation_id !== message.conversation_id) throw new E2EError("undecryptable", "a session of another conversation");
  if (entry.user_id !== message.from_user_id) throw new E2EError("undecryptable", "a session of someone else");
  const seenAt = `midx:${envelope.sender_key}|${envelope.session_id}|${result.message_index}`;
  const seenUnder = await keys.get("plain", seenAt);
  if (seenUnder && message.message_id && seenUnder !== message.message_id) throw new E2EError("undecryptable", "replayed: its Megolm index was used by another message");
  if (message.message_id) await keys.put("plain", seenAt, message.message_id);
  let parsed;
  try {
    parsed = JSON.parse(result.plaintext);
  } catch {
    throw new E2EError("undecryptable", "not JSON");
  }
  if (!parsed || typeof parsed !== "object" || typeof parsed.type !== "string") throw new E2EError("undecryptable", "no payload type");
  checkPayload(parsed, message, { device_id: entry.device_id });
  if (parsed.id) {
    const idUnder = await keys.get("plain", `pid:${parsed.id}`);
    if (idUnder && message.message_id && idUnder !== message.message_id) throw new E2EError("undecryptable", "replayed: its id was seen under another message");
    if (message.message_id) await keys.put("plain", `pid:${parsed.id}`, message.message_id);
  }
  return parsed;
}

/** A group's membership changed (pushes): the next message goes with a new session. */
export function onMembershipChanged({ group_id: groupId }) {
  members.delete(groupId);
  const convId = state.groups.get(groupId)?.conversation_id;
  if (convId && outbound.has(convId)) {
    outbound.get(convId).created = 0; // rotated before the next message
  }
}

/** What I sent from here is kept to be shown again (no ciphertext is made for this device). */
export async function keepOwn(ids, payload) {
  await ready;
  for (const id of ids) if (id) await keys.putSealed("plain", `id:${id}`, payload);
  if (waiting.size) retryPending(); // its push may have come before the reply named its id
}

async function bodyHash(body) {
  return hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)));
}

/** The payload of an encrypted message (or throws E2EError: before_device, undecryptable, unavailable). */
export async function open(message) {
  if (!ready) throw new E2EError("e2e_unavailable");
  await ready;
  const envelope = message.encrypted;
  if (envelope?.algorithm === MEGOLM) {
    // Megolm decrypts again (an edit brings a new envelope under the same id); what this device
    // sent, or was given by another of mine, is the fallback when no session opens it.
    let payload;
    try {
      payload = await serial(() => openGroup(message, envelope));
    } catch (error) {
      if (error?.code !== "waiting_key" && error?.code !== "no_key") throw error;
      for (const id of [message.message_id, message.client_msg_id]) {
        const kept = id && (await keys.getSealed("plain", `id:${id}`));
        if (kept) return kept;
      }
      throw error;
    }
    if (message.message_id) await keys.putSealed("plain", `id:${message.message_id}`, payload);
    return payload;
  }
  if (envelope?.algorithm !== ALGORITHM) throw new E2EError("undecryptable", "unknown algorithm");
  const mine = (envelope.ciphertexts || []).find((c) => c.user_id === me.user_id && c.device_id === me.device_id);
  if (!mine) {
    for (const id of [message.client_msg_id, message.message_id]) {
      const kept = id && (await keys.getSealed("plain", `id:${id}`));
      if (kept) return kept;
    }
    throw new E2EError("before_device");
  }
  const hash = await bodyHash(mine.body);
  if (!decrypting.has(hash)) {
    const pending = (async () => {
      const kept = await keys.getSealed("plain", `ct:${hash}`);
      if (kept) return kept;
      const payload = await serial(async () => {
        const again = await keys.getSealed("plain", `ct:${hash}`);
        if (again) return again;
        // The sender's identity key must be one of the sender's devices.
        let senders = await devicesOf(message.from_user_id);
        if (!senders.some((d) => d.identity_key === envelope.sender_key)) senders = await devicesOf(message.from_user_id, true);
        if (!senders.some((d) => d.identity_key === envelope.sender_key)) throw new E2EError("undecryptable", "not a device of the sender");
        const plaintext = await olmDecrypt(envelope.sender_key, mine.type, mine.body);
        let parsed;
        try {
          parsed = JSON.parse(plaintext);
        } catch {
          throw new E2EError("undecryptable", "not JSON");
        }
        if (!parsed || typeof parsed !== "object" || typeof parsed.type !== "string") throw new E2EError("undecryptable", "no payload type");
        checkPayload(parsed, message, senders.find((d) => d.identity_key === envelope.sender_key));
        if (parsed.id) {
          const seenUnder = await keys.get("plain", `pid:${parsed.id}`);
          if (seenUnder && seenUnder !== message.message_id) throw new E2EError("undecryptable", "replayed: its id was seen under another message");
          await keys.put("plain", `pid:${parsed.id}`, message.message_id || "");
        }
        const entry = { payload: parsed, message_id: message.message_id || "" };
        await keys.putSealed("plain", `ct:${hash}`, entry);
        return entry;
      });
      return payload;
    })();
    decrypting.set(hash, pending);
    pending.catch(() => decrypting.delete(hash));
  }
  const entry = await decrypting.get(hash);
  // The same ciphertext under another message: a replay by the server, refused.
  if (entry.message_id && message.message_id && entry.message_id !== message.message_id) {
    throw new E2EError("undecryptable", "replayed: this ciphertext came with another message");
  }
  if (message.message_id) await keys.putSealed("plain", `id:${message.message_id}`, entry.payload);
  return entry.payload;
}

/** docs/security.md "Payload": each of v, sender, conversation_id checked when there. */
function checkPayload(payload, message, senderDevice) {
  if (payload.v !== undefined && payload.v !== 1) throw new E2EError("undecryptable", "unknown payload version");
  if (payload.sender !== undefined) {
    if (payload.sender?.user_id !== message.from_user_id) throw new E2EError("undecryptable", "sent by someone else");
    if (payload.sender?.device_id !== senderDevice?.device_id) throw new E2EError("undecryptable", "sent from another device");
  }
  if (payload.conversation_id !== undefined && message.conversation_id && payload.conversation_id !== message.conversation_id) {
    throw new E2EError("undecryptable", "moved from another conversation");
  }
}

// --- showing messages ------------------------------------------------------------------------------
const waiting = new Set(); // [conv, message] revealed before the engine was ready, or "before_device"

/** Apply a decrypted payload to the message as the views expect it. */
export function applyPayload(message, payload) {
  for (const field of ["text", "sticker", "voice", "mentions"]) delete message[field];
  if (typeof payload.text === "string") message.text = payload.text.slice(0, 4000);
  if (payload.file && typeof payload.file === "object") {
    const server = message.sealedFile || message.file || {};
    const f = payload.file;
    message.file = {
      file_id: server.file_id || message.file_id, name: String(f.name || "file"), size: Number(f.size) || server.size || 0,
      content_type: String(f.content_type || "application/octet-stream"),
      secret: { key: f.key, nonce: f.nonce, sha256: f.sha256 },
    };
  } else if (message.file && !message.file.secret) {
    delete message.file; // an upload the payload does not name
  }
  if (payload.type === "sticker" && payload.sticker_id) {
    message.sticker = { sticker_id: String(payload.sticker_id), url: stickerUrl(String(payload.sticker_id)) };
  }
  if (payload.type === "voice" && payload.voice) message.voice = { duration_ms: Number(payload.voice.duration_ms) || 0 };
  if (Array.isArray(payload.mentions)) message.mentions = payload.mentions;
}

function stickerUrl(stickerId) {
  // Built-in stickers are this page's own files; a sticker of one's own is an image of the server.
  const builtin = /^builtin:([a-z0-9_-]+)$/.exec(stickerId);
  return builtin ? `/app/stickers/${builtin[1]}.svg` : `/images/${encodeURIComponent(stickerId)}`;
}

/** Decrypt `message` (held in `conv`, or a listing's last message) and redraw it when done. */
export function reveal(conv, message) {
  if (!message?.encrypted) return;
  if (message.e2e === "ok" && message.revealed === message.encrypted) return;
  message.e2e = "pending";
  delete message.text;
  if (message.file && !message.file.secret) { // the server's view of it ("encrypted", octet-stream): not drawn
    message.sealedFile = message.file;
    delete message.file;
  }
  if (e2e.status === "unavailable") {
    message.e2e = "unavailable";
    waiting.add([conv, message]);
    return;
  }
  if (!ready) { // before the first bind (the chats saved for offline use): once the engine starts
    waiting.add([conv, message]);
    return;
  }
  const envelope = message.encrypted;
  open(message).then((payload) => {
    if (message.encrypted !== envelope) return;
    applyPayload(message, payload);
    message.e2e = "ok";
    message.revealed = envelope;
    // Mentions travel inside the ciphertext: the unread-mention mark is counted here.
    if (message.countedUnread && !message.mentionCounted && store.mentionsMe(message) && conv && message.seq > conv.readSent) {
      message.mentionCounted = true;
      conv.unreadMentions += 1;
    }
    fillQuote(conv, message);
  }, (error) => {
    if (message.encrypted !== envelope) return;
    // One this device cannot decrypt, sent well before its keys were made (logged in again, or
    // the same device id with new keys): written for the keys it had before, not tampered with.
    const older = createdAt && message.sent_at && new Date(message.sent_at).getTime() < createdAt - CLOCK_SLACK_MS;
    message.e2e = error?.code === "waiting_key" ? "waiting" : error?.code === "no_key" ? "nokey" : error?.code === "before_device" || (error?.code === "undecryptable" && older && !/replayed/.test(error.message)) ? "before"
      : error?.code === "e2e_unavailable" ? "unavailable" : "failed";
    for (const field of ["text", "sticker", "voice", "mentions"]) delete message[field];
    delete message.file;
    if (message.e2e !== "failed" && message.e2e !== "nokey") waiting.add([conv, message]);
    if (message.e2e === "failed") console.warn("a message did not decrypt", message.message_id, error?.message);
  }).finally(() => {
    if (conv?.messages.get(message.key) === message) store.touch(conv, message);
    changed();
  });
}

/** A reply's quote comes from this page's own copy of the message it answers. */
function fillQuote(conv, message) {
  const quote = message.reply_to;
  if (!quote || !conv) return;
  const answered = conv.byId.get(quote.message_id);
  if (answered?.text) quote.text = answered.text.slice(0, 100);
  if (answered?.file) quote.file_name = answered.file.name;
}

/** Try again what waited for the engine or for history from another device of mine. */
function retryPending() {
  const items = [...waiting];
  waiting.clear();
  for (const [conv, message] of items) {
    if (message.e2e === "ok") continue;
    message.revealed = null;
    reveal(conv, message);
  }
}

// --- history for a new device of mine ------------------------------------------------------------------
/** Push `keys.changed`: forget the user's devices; note a new device of mine; a peer's new key. */
export function onKeysChanged({ user_id: userId, device_id: deviceId, change }) {
  devices.delete(userId);
  for (const entry of outbound.values()) { // a device added or removed: groups shared with it rotate
    if (entry.shared.some((tag) => tag.startsWith(`${userId}|`)) || userId === me?.user_id) entry.created = 0;
  }
  if (!me) return;
  if (userId === me.user_id && change === "added" && deviceId !== me.device_id && !e2e.newDevices.includes(deviceId)) {
    e2e.newDevices.push(deviceId);
  }
  if (userId !== me.user_id && e2e.status === "ready") devicesOf(userId, true).catch(() => {});
  changed();
}

/** Everything this device has read or sent, Olm-encrypted to my device `deviceId`, in chunks. */
export function shareHistory(deviceId) {
  return ready.then(async () => {
    const target = (await devicesOf(me.user_id, true)).find((d) => d.device_id === deviceId);
    if (!target) throw new E2EError("no_keys", "that device has no keys");
    const items = [];
    for (const conv of state.convs.values()) {
      if (!conv.encryptedAt) continue;
      for (const message of conv.seqs.values()) {
        if (!message.message_id || message.e2e !== "ok") continue;
        const payload = await keys.getSealed("plain", `id:${message.message_id}`);
        if (payload) items.push({ conversation_id: conv.id, message_id: message.message_id, payload });
      }
    }
    const chunks = [];
    let chunk = [];
    let size = 0;
    for (const item of items) {
      const length = new TextEncoder().encode(JSON.stringify(item)).length + 1;
      if (length > HISTORY_CHUNK_BYTES - 40) continue; // one too long to go alone: left out
      if (chunk.length && size + length > HISTORY_CHUNK_BYTES - 40) {
        chunks.push(chunk);
        chunk = [];
        size = 0;
      }
      chunk.push(item);
      size += length;
    }
    if (chunk.length || !chunks.length) chunks.push(chunk);
    e2e.sharing = { device_id: deviceId, sent: 0, total: chunks.length };
    changed();
    for (let i = 0; i < chunks.length; i += 16) {
      const batch = chunks.slice(i, i + 16);
      const messages = await serial(async () => {
        await ensureSessions([target]);
        const out = [];
        for (const part of batch) {
          const { session, message } = olmEncrypt(target.identity_key, JSON.stringify({ type: "history", items: part }));
          await saveSession(target.identity_key, session);
          out.push({ device_id: deviceId, sender_key: me.identity_key, type: message.type, body: message.body });
        }
        return out;
      });
      await conn.request("devices.send", { messages });
      e2e.sharing.sent += batch.length;
      changed();
    }
    e2e.newDevices = e2e.newDevices.filter((id) => id !== deviceId);
    e2e.sharing = null;
    changed();
    return items.length;
  });
}

/** Push `device.message`: history from another device of mine, imported, then acknowledged. */
export async function onDeviceMessage(push) {
  try {
    await ready;
    const mineList = await devicesOf(me.user_id);
    let sender = mineList.find((d) => d.identity_key === push.sender_key);
    if (!sender) sender = (await devicesOf(me.user_id, true)).find((d) => d.identity_key === push.sender_key);
    if (!sender || push.from_user_id && push.from_user_id !== me.user_id) {
      // Another member's device: only a room key is taken from it (checked against its pins).
      const plaintext = await serial(() => olmDecrypt(push.sender_key, push.type, push.body));
      const content = JSON.parse(plaintext);
      if (content?.type === "room_key") {
        await serial(() => acceptRoomKey(content, push.sender_key, push.from_user_id));
        retryPending();
      } else {
        console.warn("a device message of another user that is not a room key: dropped");
      }
    } else if (sender) {
      const plaintext = await serial(() => olmDecrypt(push.sender_key, push.type, push.body));
      const content = JSON.parse(plaintext);
      if (content?.type === "room_key") {
        await serial(() => acceptRoomKey(content, push.sender_key, me.user_id));
        retryPending();
      } else if (content?.type === "history" && Array.isArray(content.items)) {
        for (const item of content.items) {
          if (item?.message_id && item.payload?.type) await keys.putSealed("plain", `id:${item.message_id}`, item.payload);
        }
        retryPending();
      }
    } else {
      console.warn("a device message from a device that is not mine: dropped");
    }
  } catch (error) {
    console.warn("a device message could not be read", error);
  }
  conn.request("devices.ack", { ids: [push.id] }).catch(() => {});
}

// --- files: AES-256-GCM before upload, after download ------------------------------------------------
/** {blob: the ciphertext to upload (named `encrypted`, application/octet-stream), secret: {key, nonce, sha256}}. */
export async function encryptFile(file) {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt"]);
  const ciphertext = await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce }, key, await file.arrayBuffer());
  const sha256 = hex(await crypto.subtle.digest("SHA-256", ciphertext));
  const blob = new File([ciphertext], "encrypted", { type: "application/octet-stream" });
  return { blob, secret: { key: b64(raw), nonce: b64(nonce), sha256 } };
}

/** The file's bytes from its downloaded ciphertext; throws E2EError when it is not the file named. */
export async function decryptFile(ciphertext, secret, type) {
  const sha256 = hex(await crypto.subtle.digest("SHA-256", ciphertext));
  if (sha256 !== String(secret.sha256).toLowerCase()) throw new E2EError("undecryptable", "the file's SHA-256 differs");
  try {
    const key = await crypto.subtle.importKey("raw", unb64(secret.key), "AES-GCM", false, ["decrypt"]);
    const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: unb64(secret.nonce) }, key, ciphertext);
    return new Blob([plain], { type: type || "application/octet-stream" });
  } catch {
    throw new E2EError("undecryptable", "the file does not decrypt");
  }
}
