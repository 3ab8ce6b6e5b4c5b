// Delivery: sending through an outbox (so that nothing typed is lost to a dropped connection),
// acknowledging what arrived (`message.ack`), filling gaps left by recalled or expired messages,
// read markers (`message.read`) and `typing`.

import { conn, showError } from "./wire.js";
import * as store from "./store.js";
import { state, changed } from "./store.js";
import { randomId } from "./dom.js";
import { seal, keepOwn } from "./e2e.js";

const ACK_DELAY_MS = 400;
const GAP_DELAY_MS = 2000;

const ackTimers = new Map();

export function scheduleAck(conv) {
  if (!conv.id || ackTimers.has(conv.id)) return;
  ackTimers.set(conv.id, setTimeout(() => {
    ackTimers.delete(conv.id);
    acknowledge(conv);
  }, ACK_DELAY_MS));
}

async function acknowledge(conv) {
  const seq = store.ackTarget(conv);
  if (seq && state.bound) {
    try {
      await conn.request("message.ack", { conversation_id: conv.id, seq });
      conv.acked = Math.max(conv.acked, seq);
    } catch {
      return; // sent again after the next bind's sync
    }
  }
  if (store.gapTop(conv)) setTimeout(() => fillGap(conv), GAP_DELAY_MS);
}

/**
 * A gap that stays is a message recalled or expired before it reached this device (sync skips
 * those): look it up in the history, and count the seqs it does not return as gone.
 */
async function fillGap(conv) {
  const top = store.gapTop(conv);
  if (!top || !state.bound) return;
  let start = conv.acked || conv.firstArrival - 1;
  while (conv.seqs.has(start + 1) || conv.gone.has(start + 1)) start += 1;
  const limit = Math.min(200, top - start);
  try {
    const reply = await conn.request("history.fetch", { conversation_id: conv.id, before_seq: top, limit });
    for (const message of reply.messages) store.addMessage(message, false);
    const covered = reply.has_more && reply.messages.length ? reply.messages[0].seq : 1;
    for (let seq = Math.max(start + 1, covered); seq < top; seq += 1) if (!conv.seqs.has(seq)) conv.gone.add(seq);
    changed();
    scheduleAck(conv);
  } catch {
    // tried again on the next push or bind
  }
}

let readTimer = null;
/** markRead once for a burst of arrivals (a sync of a thousand messages sends one message.read). */
export function markReadSoon() {
  if (readTimer) return;
  readTimer = setTimeout(() => {
    readTimer = null;
    markRead();
  }, 150);
}

/** Tell the server the open conversation is read, when the page is actually being looked at. */
export function markRead() {
  const conv = store.openConv();
  if (!conv?.id || !state.bound || document.visibilityState !== "visible") return;
  const seq = store.highestFromOthers(conv);
  if (conv.unread || conv.unreadMentions) {
    conv.unread = 0;
    conv.unreadMentions = 0;
    changed();
  }
  if (seq <= conv.readSent) return;
  conv.readSent = seq;
  conn.request("message.read", { conversation_id: conv.id, seq }).catch(() => {
    conv.readSent = 0; // try again next time
  });
}

// --- sending -------------------------------------------------------------------------------------
const outbox = new Map(); // client_msg_id -> {conv, payload}

/** After (re)binding: send what is still waiting, with its first client_msg_id. */
export function flushOutbox() {
  for (const clientMsgId of outbox.keys()) deliver(clientMsgId);
}

export function clearOutbox() {
  outbox.clear();
}

/**
 * Send a message: `replyTo` (a message of this conversation), `mentions` (user ids, groups) and
 * `burn` (burn after reading, seconds, direct chats) are optional; `ttl` does not go with `burn`.
 * `sticker` ({sticker_id, url}) is sent instead of text or file; `voice` ({duration_ms}) goes
 * with an audio file (docs/protocol.md "Stickers and emoji", "Voice messages and thumbnails").
 */
export function sendMessage(conv, { text, file, ttl, replyTo, mentions, burn, sticker, voice }) {
  const clientMsgId = randomId("w");
  const payload = {
    to: conv.kind === "group" ? { group_id: conv.groupId } : { user_id: conv.peerId },
    client_msg_id: clientMsgId,
  };
  if (text) payload.text = text;
  if (file) payload.file_id = file.file_id;
  if (sticker) payload.sticker_id = sticker.sticker_id;
  if (file && voice) payload.voice = { duration_ms: voice.duration_ms };
  if (burn) payload.burn_seconds = burn;
  else if (ttl) payload.ttl_seconds = ttl;
  if (replyTo?.message_id) payload.reply_to = replyTo.message_id;
  if (mentions?.length) payload.mentions = mentions.slice(0, 50);
  const shownFile = file && { file_id: file.file_id, name: file.name, size: file.size, content_type: file.content_type };
  if (shownFile && file.secret) shownFile.secret = file.secret;
  const pending = store.addPending(conv, { clientMsgId, text, file: shownFile, ttl: burn ? 0 : ttl, replyTo, mentions: payload.mentions, burn });
  if (sticker) pending.sticker = { sticker_id: sticker.sticker_id, url: sticker.url };
  if (payload.voice) pending.voice = payload.voice;
  // End-to-end encrypted (docs/security.md): text, sticker, voice and mentions go inside the
  // ciphertext, sealed just before sending (deliver); file_id, reply_to and timers stay outside.
  const plain = conv.encryptedAt ? plainPayload(payload, file) : null;
  if (plain) {
    for (const field of ["text", "sticker_id", "voice", "mentions"]) delete payload[field];
    pending.e2e = "ok";
  }
  outbox.set(clientMsgId, { conv, payload, plain, inFlight: false });
  changed();
  deliver(clientMsgId);
}

/** What goes inside the ciphertext (the Python client reads the same payload). */
function plainPayload(payload, file) {
  const plain = { type: payload.voice ? "voice" : payload.sticker_id ? "sticker" : file ? "file" : "text" };
  if (payload.text) plain.text = payload.text;
  if (payload.sticker_id) plain.sticker_id = payload.sticker_id;
  if (payload.voice) plain.voice = payload.voice;
  if (payload.mentions) plain.mentions = payload.mentions;
  if (file?.secret) {
    plain.file = { ...file.secret, name: file.name, content_type: file.content_type, size: file.size };
  }
  return plain;
}

/** Send a failed message again, with the same client_msg_id: the server stores it at most once. */
export function retry(conv, message) {
  const payload = message.payload;
  if (!payload) return;
  message.state = "sending";
  message.error = null;
  outbox.set(message.client_msg_id, { conv, payload, plain: message.plain || null, inFlight: false });
  changed();
  deliver(message.client_msg_id);
}

async function deliver(clientMsgId) {
  const item = outbox.get(clientMsgId);
  if (!item || item.inFlight || !state.bound) return;
  item.inFlight = true;
  try {
    if (item.plain && !item.payload.encrypted) {
      const encrypted = await seal(item.conv, item.plain);
      await keepOwn([clientMsgId], item.plain); // shown again after a reload: no ciphertext is made for this device
      item.payload.encrypted = encrypted;
    }
    const reply = await conn.request("message.send", item.payload);
    if (item.plain) keepOwn([reply.message_id], item.plain).catch(() => {});
    outbox.delete(clientMsgId);
    const conv = store.confirmSent(state.convs.get(item.conv.key) || item.conv, clientMsgId, reply);
    scheduleAck(conv);
  } catch (error) {
    item.inFlight = false;
    if (error.code === "disconnected") return; // sent again after the next bind
    if (becameEncrypted(item, error)) {
      deliver(clientMsgId); // sealed this time
      return;
    }
    outbox.delete(clientMsgId);
    const conv = state.convs.get(item.conv.key) || item.conv;
    store.failSend(conv, clientMsgId, error); // worded when drawn (views/messages.js)
    const message = conv.messages.get(`c:${clientMsgId}`);
    if (message) {
      message.payload = item.payload;
      message.plain = item.plain;
      if (item.plain) delete item.payload.encrypted; // sealed anew on retry (the devices may have changed)
    }
    showError(error, "message.send");
  }
  changed();
}

/**
 * The peer turned encryption on just before I sent (its push not here yet): the server refuses
 * plaintext (`data.encrypted`). Text and stickers are then sealed and sent again; a file that
 * went up unencrypted is not.
 */
function becameEncrypted(item, error) {
  const conv = state.convs.get(item.conv.key) || item.conv;
  if (item.plain || error.code !== "bad_request" || !/send encrypted/.test(error.message || "")) return false;
  if (item.payload.file_id) return false;
  conv.encryptedAt ||= new Date().toISOString();
  conv.all += 1;
  item.plain = plainPayload(item.payload, null);
  for (const field of ["text", "sticker_id", "voice", "mentions"]) delete item.payload[field];
  const message = conv.messages.get(`c:${item.payload.client_msg_id}`);
  if (message) message.e2e = "ok";
  return true;
}

let lastTyping = 0;
/** `typing` while the user writes, at most every 3 s (the server pushes at most one a second). */
export function typing() {
  const conv = store.openConv();
  if (!conv?.id || !state.bound || Date.now() - lastTyping < 3000) return;
  lastTyping = Date.now();
  conn.request("typing", { conversation_id: conv.id }).catch(() => {});
}
