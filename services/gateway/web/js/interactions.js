// What people do with a message after it is sent (docs/protocol.md "Edit, reply, reactions,
// mentions, burn after reading, delete for me, receipts"): editing, reacting, hiding it for me,
// opening a burn-after-reading message; and the pushes that tell of such changes made elsewhere,
// including the ones a sync replays (`message.changed`, `message.burned`, `message.recalled`).
// Each change touches only the message concerned, so only its bubble is redrawn.

import { conn, showError } from "./wire.js";
import * as store from "./store.js";
import { state, changed } from "./store.js";
import { seal, keepOwn, reveal } from "./e2e.js";

export const EDIT_WINDOW_MS = 24 * 3600 * 1000;
export const RECALL_WINDOW_MS = 10 * 60 * 1000;

// --- what the user may do with a message ----------------------------------------------------------
const isMine = (message) => message.from_user_id === state.me?.user_id;
const stored = (message) => Boolean(message.seq && message.message_id) && !message.recalled && !message.burned;
const locked = (message) => Boolean(message.burn) && !isMine(message) && message.text === undefined && !message.file && !message.sticker;

/** {reply, react, edit, hide, recall}: which actions the toolbar offers for this message. */
export function allowed(message) {
  const age = Date.now() - new Date(message.sent_at).getTime();
  const ok = stored(message);
  return {
    reply: ok && !message.call && !message.burn,
    react: ok && !locked(message) && !message.e2e && !message.encrypted, // none in encrypted conversations
    edit: ok && isMine(message) && Boolean(message.text) && !message.burn && !message.call && age < EDIT_WINDOW_MS,
    hide: ok,
    recall: ok && isMine(message) && !message.call && age < RECALL_WINDOW_MS,
  };
}

// --- operations -----------------------------------------------------------------------------------
export async function editMessage(conv, message, text) {
  try {
    let reply;
    if (conv.encryptedAt) {
      const payload = { type: "text", text };
      if (message.mentions?.length) payload.mentions = message.mentions;
      const encrypted = await seal(conv, payload, message.message_id);
      await keepOwn([message.message_id, message.client_msg_id], payload);
      reply = await conn.request("message.edit", { message_id: message.message_id, encrypted });
      message.encrypted = encrypted;
      message.revealed = encrypted;
    } else {
      reply = await conn.request("message.edit", { message_id: message.message_id, text });
    }
    Object.assign(message, { text, edited_at: reply.edited_at });
    store.touch(conv, message);
    changed();
    return true;
  } catch (error) {
    showError(error, "message.edit");
    return false;
  }
}

/** Add my reaction `emoji`, or take it back if it is there. Shown at once, corrected by the push. */
export async function toggleReaction(conv, message, emoji) {
  const me = state.me.user_id;
  const before = message.reactions || [];
  const had = before.some((r) => r.emoji === emoji && r.user_ids.includes(me));
  message.reactions = changeReactions(before, emoji, me, !had);
  store.touch(conv, message);
  changed();
  try {
    await conn.request(had ? "reaction.remove" : "reaction.add", { message_id: message.message_id, emoji });
  } catch (error) {
    if (message.reactions !== before) {
      message.reactions = before;
      store.touch(conv, message);
      changed();
    }
    showError(error, had ? "reaction.remove" : "reaction.add");
  }
}

function changeReactions(reactions, emoji, userId, add) {
  const next = reactions.map((r) => ({ ...r, user_ids: [...r.user_ids] }));
  let entry = next.find((r) => r.emoji === emoji);
  if (add) {
    if (!entry) next.push((entry = { emoji, count: 0, user_ids: [] }));
    if (!entry.user_ids.includes(userId)) entry.user_ids.push(userId);
  } else if (entry) {
    entry.user_ids = entry.user_ids.filter((id) => id !== userId);
  }
  for (const r of next) r.count = r.user_ids.length;
  return next.filter((r) => r.count > 0);
}

/** Delete for me: gone from my devices, kept for everyone else. */
export async function hideMessage(conv, message) {
  try {
    await conn.request("message.hide", { message_id: message.message_id });
    store.removeMessage(conv, message);
    changed();
  } catch (error) {
    showError(error, "message.hide");
  }
}

/** Open a burn-after-reading message sent to me: its content comes with the reply, the clock starts. */
export async function openBurn(conv, message) {
  try {
    const full = await conn.request("message.open", { message_id: message.message_id });
    replaceContent(conv, message, full);
    changed();
  } catch (error) {
    showError(error, "message.open");
  }
}

// --- pushes ---------------------------------------------------------------------------------------
/** The content fields of a message, replaced as a whole by `message.changed` and `message.open`. */
const CONTENT = ["text", "file", "sticker", "voice", "call", "expires_at", "edited_at", "reply_to", "reactions", "mentions", "burn", "encrypted"];

function replaceContent(conv, message, full) {
  const keepOpened = message.burn && !isMine(message) && message.text !== undefined && full.text === undefined;
  for (const field of CONTENT) {
    if (keepOpened && (field === "text" || field === "file")) continue; // I opened it here: keep showing it
    if (full[field] === undefined) delete message[field];
    else message[field] = full[field];
  }
  if (store.isBurnt(message)) {
    store.burnMessage(conv, message);
    return;
  }
  if (message.encrypted && !(keepOpened && message.e2e === "ok")) reveal(conv, message);
  store.noteTimed(conv, message);
  store.touch(conv, message);
}

export function listenInteractions() {
  const on = (type, fn) => conn.on(type, (data) => {
    fn(data);
    changed();
  });
  on("message.edited", ({ conversation_id, message_id, text, edited_at, encrypted }) => {
    const { conv, message } = store.findMessage(conversation_id, message_id);
    if (encrypted) { // its new envelope, decrypted here
      if (message && message.revealed !== encrypted && message.encrypted !== encrypted) {
        Object.assign(message, { encrypted, edited_at });
        reveal(conv, message);
      }
      return;
    }
    if (message) {
      Object.assign(message, { text, edited_at });
      store.touch(conv, message);
    }
    if (conv?.lastMessage && conv.lastMessage !== message && conv.lastMessage.message_id === message_id) {
      Object.assign(conv.lastMessage, { text, edited_at });
    }
  });
  on("message.reactions", ({ conversation_id, message_id, reactions }) => {
    const { conv, message } = store.findMessage(conversation_id, message_id);
    if (!message) return;
    message.reactions = reactions;
    store.touch(conv, message);
  });
  on("message.opened", ({ conversation_id, message_id, opened_at, burns_at }) => {
    const { conv, message } = store.findMessage(conversation_id, message_id);
    if (!message) return;
    message.burn = { ...message.burn, opened_at, burns_at };
    store.noteTimed(conv, message);
    store.touch(conv, message);
  });
  on("message.burned", ({ conversation_id, message_id }) => {
    const { conv, message } = store.findMessage(conversation_id, message_id);
    if (message) store.burnMessage(conv, message);
  });
  on("message.hidden", ({ conversation_id, message_id }) => {
    const { conv, message } = store.findMessage(conversation_id, message_id);
    if (message) store.removeMessage(conv, message);
  });
  on("message.recalled", ({ conversation_id, message_id }) => {
    store.markRecalled(conversation_id, message_id);
  });
  on("message.changed", (full) => {
    const conv = store.convById(full.conversation_id);
    const message = conv?.seqs.get(full.seq);
    if (message) replaceContent(conv, message, full); // one not held here comes with history
  });
  on("receipt.read", ({ conversation_id, user_id, seq }) => {
    const conv = store.convById(conversation_id);
    if (conv) store.movePosition(conv, conv.readBy, user_id, seq);
  });
  on("receipt.delivered", ({ conversation_id, user_id, seq }) => {
    const conv = store.convById(conversation_id);
    if (conv) store.movePosition(conv, conv.deliveredTo, user_id, seq);
  });
}
