// What the page knows: the user, people, friends, groups, conversations and their messages.
// Only data and its rules live here (deduplication by seq, what to acknowledge, unread counts,
// read state); session.js talks to the server, the views draw. Any change calls changed(), which
// re-renders once, a moment later.
//
// Drawing stays incremental: a change to one message calls touch(conv, message) (its `rev` goes
// up and its key joins `conv.dirty`), a change to which messages there are or their order calls
// relayout(conv), and a change that alters how every message looks (names, group size) bumps
// `conv.all` or `state.namesRev`. The message view redraws only what these say.

import { t } from "./i18n.js";

const listeners = new Set();
let scheduled = false;

// Decrypts a message of an end-to-end encrypted conversation (e2e.js sets it): fn(conv, message).
let revealer = () => {};
export function setRevealer(fn) {
  revealer = fn;
}

export function subscribe(fn) {
  listeners.add(fn);
}

export function changed() {
  if (scheduled) return;
  scheduled = true;
  setTimeout(() => {
    scheduled = false;
    for (const fn of listeners) fn();
  }, 0);
}

export const state = {
  screen: "auth", // auth | app
  authMessage: null, // () => why the user is back on the login screen (in the language shown)
  me: null, // {user_id, username}
  bound: false, // the socket is logged in
  status: "idle", // idle | connecting | reconnecting | syncing | connected | paused
  offline: false, // the browser has no network (js/pwa.js): saved chats shown, sending waits
  users: new Map(), // user_id -> {user_id, username, display_name, avatar_url}
  friends: new Map(), // user_id -> {user_id, online, last_seen}
  incoming: new Map(), // user_id -> user (they asked me)
  outgoing: new Map(), // user_id -> user (I asked them)
  groups: new Map(), // group_id -> {group_id, name, conversation_id, role, members: null | [...]}
  convs: new Map(), // key (conversation_id, or "peer:<user_id>" before the first message) -> conv
  openKey: null,
  search: { query: "", results: [], busy: false },
  upload: null, // {name, progress 0..1}
  error: null, // {text: () => words in the language shown, at} (wire.js showError)
  namesRev: 0, // goes up when a user's name changes (every bubble naming them is redrawn)
};

export function reset() {
  for (const map of [state.users, state.friends, state.incoming, state.outgoing, state.groups, state.convs]) {
    map.clear();
  }
  Object.assign(state, { me: null, bound: false, openKey: null, upload: null, error: null });
  state.search = { query: "", results: [], busy: false };
  changed();
}

// --- people --------------------------------------------------------------------------------------
export function learnUser(user) {
  if (!user?.user_id) return;
  const known = state.users.get(user.user_id) || {};
  const merged = { ...known, ...user };
  if (merged.username !== known.username || merged.display_name !== known.display_name
      || merged.avatar_url !== known.avatar_url) state.namesRev += 1; // avatars drawn beside names too
  state.users.set(user.user_id, merged);
}

export function nameOf(userId) {
  if (state.me && userId === state.me.user_id) return t("common.you");
  const user = state.users.get(userId);
  return user ? user.display_name || user.username : t("common.someone");
}

// --- conversations -------------------------------------------------------------------------------
function newConv(key, fields) {
  return {
    key, id: null, kind: "direct", peerId: null, groupId: null,
    lastSeq: 0, listedSeq: 0, lastMessage: null, lastActivity: "", unread: 0,
    messages: new Map(), // key ("s:<seq>", or "c:<client_msg_id>" for my sends) -> message
    seqs: new Map(), // seq -> message
    byId: new Map(), // message_id -> message
    gone: new Set(), // seqs recalled, expired, burned or hidden (counted as held for acks)
    firstArrival: 0, acked: 0, // see ackTarget()
    readBy: new Map(), // other user_id -> highest seq they read
    deliveredTo: new Map(), // other user_id -> highest seq one of their devices received
    readSent: 0, hasMore: null, historyLoaded: false, loadingOlder: false,
    unreadMentions: 0, highestOthers: 0,
    typing: new Map(), // user_id -> until (ms)
    replyTo: null, // the message the composer answers
    encryptedAt: null, // end-to-end encrypted since (docs/security.md), null if not
    // Incremental drawing (see the top of this file).
    dirty: new Set(), layout: 0, all: 0, ordered: null,
    timed: new Set(), // keys of messages with a clock: disappearing, or burning once opened
    ...fields,
  };
}

export function openConv() {
  return state.openKey ? state.convs.get(state.openKey) || null : null;
}

export function convById(id) {
  return state.convs.get(id) || null;
}

export function directConv(peerId) {
  for (const conv of state.convs.values()) if (conv.kind === "direct" && conv.peerId === peerId) return conv;
  const key = `peer:${peerId}`;
  const conv = newConv(key, { kind: "direct", peerId });
  state.convs.set(key, conv);
  return conv;
}

export function groupConv(group) {
  let conv = convById(group.conversation_id);
  if (!conv) {
    conv = newConv(group.conversation_id, { id: group.conversation_id, kind: "group", groupId: group.group_id });
    state.convs.set(conv.key, conv);
  }
  return conv;
}

/** The conversation `id`, created from what a message or listing says about it. */
export function ensureConv(id, { kind, peerId = null, groupId = null }) {
  const known = convById(id);
  if (known) return known;
  if (kind === "direct" && peerId) {
    const placeholder = state.convs.get(`peer:${peerId}`);
    if (placeholder) return adoptId(placeholder, id);
  }
  const conv = newConv(id, { id, kind, peerId, groupId });
  state.convs.set(id, conv);
  return conv;
}

/** A conversation first known by its peer gets its id (from the reply to its first message). */
export function adoptId(conv, id) {
  if (conv.id === id) return conv;
  state.convs.delete(conv.key);
  const existing = convById(id);
  const target = existing || conv;
  if (existing) {
    for (const [key, message] of conv.messages) if (!existing.messages.has(key)) existing.messages.set(key, message);
    relayout(existing);
  } else {
    conv.id = id;
    conv.key = id;
    state.convs.set(id, conv);
  }
  for (const message of target.messages.values()) message.conversation_id = id;
  if (state.openKey === conv.key || state.openKey === `peer:${conv.peerId}`) state.openKey = target.key;
  return target;
}

export function titleOf(conv) {
  if (conv.kind === "group") return state.groups.get(conv.groupId)?.name || t("groups.group");
  return nameOf(conv.peerId);
}

/** One item of `conversations.list`: the server's word on unread and the latest message. */
export function learnListed(item) {
  if (item.peer) learnUser(item.peer);
  if (item.group && !state.groups.has(item.group.group_id)) {
    state.groups.set(item.group.group_id, { ...item.group, conversation_id: item.conversation_id, role: "member", members: null });
  }
  const conv = ensureConv(item.conversation_id, {
    kind: item.kind, peerId: item.peer?.user_id, groupId: item.group?.group_id,
  });
  conv.lastSeq = Math.max(conv.lastSeq, item.last_seq);
  conv.listedSeq = item.last_seq;
  conv.unread = conv.readSent >= item.last_seq ? 0 : item.unread;
  // In an encrypted group the mentions are inside the ciphertext: the count is this page's (e2e.js).
  const serverCounts = !(item.encrypted_at && item.kind === "group");
  conv.unreadMentions = conv.readSent >= item.last_seq ? 0 : serverCounts ? item.unread_mentions || 0 : conv.unreadMentions;
  learnPositions(conv, item);
  if (item.encrypted_at) conv.encryptedAt = item.encrypted_at;
  const newest = latestVisible(conv);
  const listed = item.last_message && conv.lastMessage?.message_id === item.last_message.message_id
    && conv.lastMessage.encrypted === item.last_message.encrypted ? conv.lastMessage : item.last_message;
  conv.lastMessage = newest && newest.seq >= (item.last_message?.seq || 0) ? newest : listed || newest;
  if (conv.lastMessage === item.last_message && item.last_message?.encrypted) revealer(conv, item.last_message);
  conv.lastActivity = conv.lastMessage?.sent_at || conv.lastActivity;
}

export function sortedConvs() {
  return [...state.convs.values()]
    .filter((conv) => conv.id && !conv.ended) // ended: a group I was removed from, still open (group_state.js)
    .sort((a, b) => (b.lastActivity || "").localeCompare(a.lastActivity || ""));
}

// --- messages ------------------------------------------------------------------------------------
/** The conversation a pushed or fetched message belongs to. */
export function convOfMessage(message) {
  const group = message.to?.group_id;
  if (group) return ensureConv(message.conversation_id, { kind: "group", groupId: group });
  const mine = state.me && message.from_user_id === state.me.user_id;
  return ensureConv(message.conversation_id, { kind: "direct", peerId: mine ? message.to?.user_id : message.from_user_id });
}

/**
 * Keep a message unless it is a duplicate (same conversation and seq) or already gone; returns
 * it, or null. `arrival`: it came as a push (or as the reply to my send), so it counts for acks.
 */
export function addMessage(message, arrival) {
  const conv = convOfMessage(message);
  if (arrival) conv.firstArrival = conv.firstArrival ? Math.min(conv.firstArrival, message.seq) : message.seq;
  if (conv.seqs.has(message.seq) || conv.gone.has(message.seq) || isExpired(message) || isBurnt(message)) {
    if (isExpired(message) || isBurnt(message)) conv.gone.add(message.seq);
    return null;
  }
  const kept = { ...message, key: `s:${message.seq}`, rev: 1 };
  conv.messages.set(kept.key, kept);
  conv.seqs.set(kept.seq, kept);
  conv.byId.set(kept.message_id, kept);
  if (kept.encrypted) {
    conv.encryptedAt ||= kept.sent_at;
    revealer(conv, kept);
  }
  noteTimed(conv, kept);
  relayout(conv);
  noteNewest(conv, kept);
  const mine = state.me && kept.from_user_id === state.me.user_id;
  if (!mine && kept.seq > conv.highestOthers) conv.highestOthers = kept.seq;
  if (arrival && !mine && kept.seq > conv.listedSeq && kept.seq > conv.readSent) {
    conv.unread += 1;
    kept.countedUnread = true; // an encrypted one's mentions are counted once decrypted (e2e.js)
    if (mentionsMe(kept)) {
      kept.mentionCounted = true;
      conv.unreadMentions += 1;
    }
  }
  return kept;
}

export function mentionsMe(message) {
  return Boolean(state.me && message.mentions?.includes(state.me.user_id));
}

/** This message looks different: redraw it (and only it). */
export function touch(conv, message) {
  message.rev = (message.rev || 0) + 1;
  conv.dirty.add(message.key);
}

/** Messages came or went: the list is put in order again. */
export function relayout(conv) {
  conv.layout += 1;
  conv.ordered = null;
}

/** Keep `conv.timed` (the messages whose clock runs) in step with the message. */
export function noteTimed(conv, message) {
  const clock = !message.recalled && !message.burned && (message.expires_at || message.ttl || message.burn?.burns_at);
  if (clock) conv.timed.add(message.key);
  else conv.timed.delete(message.key);
}

function noteNewest(conv, message) {
  if (message.seq >= conv.lastSeq) {
    conv.lastSeq = message.seq;
    conv.lastMessage = message;
    conv.lastActivity = message.sent_at;
  }
}

export function isExpired(message) {
  return Boolean(message.expires_at) && new Date(message.expires_at).getTime() <= Date.now();
}

/** A burn-after-reading message whose time is up (opened, and burns_at has passed). */
export function isBurnt(message) {
  return Boolean(message.burn?.burns_at) && new Date(message.burn.burns_at).getTime() <= Date.now();
}

/** My message, shown at once as "sending" until the server stores it. */
export function addPending(conv, { clientMsgId, text, file, ttl, replyTo, mentions, burn }) {
  const message = {
    key: `c:${clientMsgId}`, client_msg_id: clientMsgId, conversation_id: conv.id,
    from_user_id: state.me.user_id, text, file, ttl, sent_at: new Date().toISOString(), state: "sending", rev: 1,
  };
  if (replyTo) message.reply_to = quoteOf(replyTo);
  if (mentions?.length) message.mentions = mentions;
  if (burn) message.burn = { seconds: burn };
  if (conv.encryptedAt) message.e2e = "ok"; // written here: shown as typed, sent as ciphertext
  conv.messages.set(message.key, message);
  conv.lastActivity = message.sent_at;
  relayout(conv);
  return message;
}

/** What a reply shows of the message it answers (as the server stores it in `reply_to`). */
export function quoteOf(message) {
  const quote = { message_id: message.message_id, from_user_id: message.from_user_id };
  if (message.text) quote.text = message.text.slice(0, 100);
  if (message.file) quote.file_name = message.file.name;
  return quote;
}

/** The reply to my send: the message has its seq and is stored ("sent"). */
export function confirmSent(conv, clientMsgId, reply) {
  conv = adoptId(conv, reply.conversation_id);
  const message = conv.messages.get(`c:${clientMsgId}`);
  if (!message) return conv;
  conv.firstArrival = conv.firstArrival ? Math.min(conv.firstArrival, reply.seq) : reply.seq;
  if (conv.seqs.has(reply.seq)) {
    conv.messages.delete(message.key); // a push of it came first
    return conv;
  }
  Object.assign(message, {
    seq: reply.seq, message_id: reply.message_id, sent_at: reply.sent_at, state: "sent", error: null,
  });
  if (message.ttl) message.expires_at = new Date(new Date(reply.sent_at).getTime() + message.ttl * 1000).toISOString();
  conv.seqs.set(reply.seq, message);
  conv.byId.set(message.message_id, message);
  noteTimed(conv, message);
  touch(conv, message);
  relayout(conv);
  noteNewest(conv, message);
  return conv;
}

/** My send failed: `error` (a ProtocolError) is kept, and said in words where it is shown. */
export function failSend(conv, clientMsgId, error) {
  const message = conv.messages.get(`c:${clientMsgId}`);
  if (message) {
    Object.assign(message, { state: "failed", error });
    touch(conv, message);
  }
}

/** The message `messageId` of conversation `conversationId`, with its conversation, or {}. */
export function findMessage(conversationId, messageId) {
  const conv = convById(conversationId);
  const message = conv?.byId.get(messageId);
  return message ? { conv, message } : { conv };
}

/** A recalled message keeps its place, without its text or file. */
export function markRecalled(conversationId, messageId) {
  const { conv, message } = findMessage(conversationId, messageId);
  if (!message) return conv || null;
  Object.assign(message, {
    recalled: true, text: undefined, file: undefined, expires_at: undefined, ttl: undefined,
    reactions: undefined, reply_to: undefined, burn: undefined,
  });
  noteTimed(conv, message);
  touch(conv, message);
  return conv;
}

/** A message leaves this page for good (hidden for me, burned, expired): its seq counts as held. */
export function removeMessage(conv, message) {
  conv.messages.delete(message.key);
  if (message.seq) {
    conv.seqs.delete(message.seq);
    conv.gone.add(message.seq);
  }
  if (message.message_id) conv.byId.delete(message.message_id);
  conv.timed.delete(message.key);
  conv.dirty.delete(message.key);
  if (conv.replyTo === message) conv.replyTo = null;
  relayout(conv);
  if (conv.lastMessage === message || conv.lastMessage?.message_id === message.message_id) {
    conv.lastMessage = latestVisible(conv);
  }
}

/**
 * A burn-after-reading message is destroyed: the recipient loses it altogether; the sender keeps
 * an empty bubble saying "burned".
 */
export function burnMessage(conv, message) {
  if (message.from_user_id !== state.me?.user_id) {
    removeMessage(conv, message);
    return;
  }
  Object.assign(message, { burned: true, text: undefined, file: undefined, reply_to: undefined, reactions: undefined });
  noteTimed(conv, message);
  touch(conv, message);
  if (conv.replyTo === message) conv.replyTo = null;
}

/** Drop what has expired or burned; true when something went. Looks only at messages with a clock. */
export function dropExpired(conv) {
  let dropped = false;
  for (const key of [...conv.timed]) {
    const message = conv.messages.get(key);
    if (!message) {
      conv.timed.delete(key);
    } else if (message.seq && isExpired(message)) {
      removeMessage(conv, message);
      dropped = true;
    } else if (message.seq && isBurnt(message)) {
      burnMessage(conv, message);
      dropped = true;
    }
  }
  return dropped;
}

export function latestVisible(conv) {
  let newest = null;
  for (const message of conv.seqs.values()) if (!newest || message.seq > newest.seq) newest = message;
  return newest;
}

/** Messages in display order: by seq, then my sends still waiting for theirs (kept until relayout). */
export function orderedMessages(conv) {
  if (!conv.ordered) {
    const stored = [...conv.seqs.values()].sort((a, b) => a.seq - b.seq);
    const waiting = [...conv.messages.values()].filter((m) => !m.seq);
    conv.ordered = stored.concat(waiting);
  }
  return conv.ordered;
}

export function lowestSeq(conv) {
  let low = 0;
  for (const seq of conv.seqs.keys()) if (!low || seq < low) low = seq;
  for (const seq of conv.gone) if (!low || seq < low) low = seq;
  return low;
}

/** The highest seq of someone else's message here (kept up to date by addMessage). */
export function highestFromOthers(conv) {
  return conv.highestOthers;
}

// --- receipts ------------------------------------------------------------------------------------
/** `read_by` and `delivered_to` of a conversations.list entry or a history.fetch reply. */
export function learnPositions(conv, { read_by: readBy, delivered_to: deliveredTo }) {
  for (const { user_id: userId, seq } of readBy || []) movePosition(conv, conv.readBy, userId, seq);
  for (const { user_id: userId, seq } of deliveredTo || []) movePosition(conv, conv.deliveredTo, userId, seq);
}

/** Someone read (or received) up to `seq`: my messages in between show it. Never moves back. */
export function movePosition(conv, positions, userId, seq) {
  if (userId === state.me?.user_id) return;
  const before = positions.get(userId) || 0;
  if (seq <= before) return;
  positions.set(userId, seq);
  for (let s = Math.max(before + 1, seq - 5000); s <= seq; s += 1) {
    const message = conv.seqs.get(s);
    if (message && message.from_user_id === state.me?.user_id) touch(conv, message);
  }
}

/**
 * Where my message is: {status: "sending" | "failed" | "sent" | "delivered" | "read", read, of}
 * (in a group: read by `read` of the `of` other members; "read" once all of them have).
 */
export function ownState(conv, message) {
  if (!message.seq) return { status: message.state || "sending", read: 0, of: 0 };
  let read = 0;
  let delivered = 0;
  for (const seq of conv.readBy.values()) if (seq >= message.seq) read += 1;
  for (const [userId, seq] of conv.deliveredTo) {
    if (seq >= message.seq || (conv.readBy.get(userId) || 0) >= message.seq) delivered += 1;
  }
  const members = conv.kind === "group" ? state.groups.get(conv.groupId)?.members?.length : 0;
  const of = conv.kind === "group" ? Math.max((members || 1) - 1, conv.readBy.size, conv.deliveredTo.size) : 1;
  const status = read && read >= of ? "read" : read || delivered ? (conv.kind === "group" && read ? "read-some" : "delivered") : "sent";
  return { status, read, of };
}

// --- acknowledging -------------------------------------------------------------------------------
/**
 * The seq to acknowledge, or 0. Sync pushes everything above this device's cursor in order, so
 * the lowest seq that arrived starts an unbroken run; acknowledge where the run first breaks
 * (docs/protocol.md "Acknowledging and gaps"). Recalled and expired seqs count as held.
 */
export function ackTarget(conv) {
  if (!conv.id || (!conv.acked && !conv.firstArrival)) return 0;
  let seq = conv.acked || conv.firstArrival - 1;
  while (conv.seqs.has(seq + 1) || conv.gone.has(seq + 1)) seq += 1;
  return seq > conv.acked ? seq : 0;
}

/** The highest seq held, above the first gap (0 when there is no gap). */
export function gapTop(conv) {
  let top = 0;
  for (const seq of conv.seqs.keys()) if (seq > top) top = seq;
  let run = conv.acked || (conv.firstArrival ? conv.firstArrival - 1 : top);
  while (conv.seqs.has(run + 1) || conv.gone.has(run + 1)) run += 1;
  return top > run ? top : 0;
}
