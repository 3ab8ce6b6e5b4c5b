// Voice and video calls (docs/protocol.md "Calls"): one call at a time, its peer connection and
// its signalling over the page's socket. A call goes
//   caller: preparing -> ringing -> connecting -> active        callee: incoming -> answering -> connecting -> active
// and ends by `finish` (the user, a `call.ended` push, a failure). Remote ICE candidates wait
// until the remote description is set (one may arrive before `call.accepted`); my own wait until
// the server knows the call (the caller's `call.invite` reply, the callee's `call.accept` reply).
// The current call is `window.parleyCall` (its `pc` is what the browser tests read stats from).

import { conn } from "./wire.js";
import { describe } from "./errors.js";
import { state, changed } from "./store.js";
import { CallFailure, localMedia, newPeerConnection, toWire, addCandidate, stopStream } from "./rtc.js";
import { startRinging, stopRinging } from "./ringtone.js";
import { endedText, failureText } from "./calltext.js";
import { t } from "./i18n.js";

const NOTICE_SHOWN_MS = 8000;
const RING_GRACE_MS = 10_000; // past ring_until without a call.ended: give up here too
const CONNECT_MS = 20_000; // answered but no media path found by then: the connection failed

let call = null;
let notice = null; // {text, at}
let noticeTimer = null;
const early = []; // pushes for a call id my pending invite has not told me yet

export const currentCall = () => call;
export const callNotice = () => notice;

function newCall(fields) {
  const c = {
    id: null, role: "caller", media: "audio", peerId: null, conversationId: null, phase: "preparing",
    offer: null, ringUntil: null, pc: null, local: null, remote: null,
    micOff: false, cameraOff: false, unstable: false, acceptedAt: 0, ended: false,
    remoteSet: false, remoteQueue: [], signalling: false, localQueue: [], timer: null,
    ...fields,
  };
  early.length = 0;
  call = c;
  window.parleyCall = c;
  changed();
  return c;
}

export function notify(text) {
  clearTimeout(noticeTimer);
  notice = text ? { text, at: Date.now() } : null;
  if (text) noticeTimer = setTimeout(() => notify(""), NOTICE_SHOWN_MS);
  changed();
}

/** End `c` here (idempotent): stop ringing, media and the connection; say why if `text`. */
function finish(c, text = "") {
  if (c.ended) return;
  c.ended = true;
  clearTimeout(c.timer);
  if (call === c) {
    call = null;
    window.parleyCall = null;
  }
  stopRinging();
  c.pc?.close();
  stopStream(c.local);
  if (text) notify(text);
  changed();
}

function failed(c, error, operation) {
  const text = error instanceof CallFailure ? failureText(error.kind) : describe(error, operation);
  if (!c.ended) endOnServer(c);
  finish(c, text);
}

/** Decline, cancel or hang up, whichever the call's phase calls for. */
function endOnServer(c) {
  if (!c.id) return; // the invite's reply will tell; startCall cancels then
  if (c.phase === "incoming" || c.phase === "answering") send("call.decline", c);
  else if (c.role === "caller" && !c.acceptedAt) {
    // a cancel that crosses the callee's accept is refused: hang up the answered call instead
    conn.request("call.cancel", { call_id: c.id }).catch((e) => e.code === "conflict" && send("call.hangup", c));
  } else send("call.hangup", c);
}

function send(type, c) {
  return conn.request(type, { call_id: c.id }).catch(() => {}); // the call is over here anyway
}

// --- the caller --------------------------------------------------------------------------------
/** Call the peer of direct conversation `conv` ("audio" or "video"). */
export async function startCall(conv, media) {
  if (call) return notify(t("calls.already_in_call"));
  if (conv?.kind !== "direct") return;
  const c = newCall({ role: "caller", media, peerId: conv.peerId, conversationId: conv.id });
  let reply;
  try {
    await connect(c);
    await c.pc.setLocalDescription(await c.pc.createOffer());
    if (c.ended) return;
    // Before a first message the conversation has no id yet: the friend is named instead.
    const to = c.conversationId ? { conversation_id: c.conversationId } : { user_id: c.peerId };
    reply = await conn.request("call.invite", { ...to, media, sdp: c.pc.localDescription.sdp });
  } catch (error) {
    return failed(c, error, "call.invite");
  }
  c.id = reply.call_id;
  if (reply.state === "ended") return finish(c, endedText(c, reply));
  if (c.ended) return send("call.cancel", c); // hung up while the invite was on its way
  c.phase = "ringing";
  c.ringUntil = reply.ring_until;
  mayTrickle(c);
  ringTimeout(c);
  for (const { type, data } of early.splice(0)) if (data.call_id === c.id) PUSHES[type](data);
  changed();
}

// --- the callee --------------------------------------------------------------------------------
function incoming(data) {
  if (call) return; // in a call already: the server answers the caller `busy`
  const c = newCall({
    id: data.call_id, role: "callee", media: data.media, peerId: data.from_user_id,
    conversationId: data.conversation_id, phase: "incoming", offer: data.sdp, ringUntil: data.ring_until,
  });
  ringTimeout(c);
  startRinging();
}

export async function accept() {
  const c = call;
  if (!c || c.phase !== "incoming") return;
  c.phase = "answering";
  stopRinging();
  changed();
  try {
    await connect(c);
    await c.pc.setRemoteDescription({ type: "offer", sdp: c.offer });
    await remoteDescribed(c);
    await c.pc.setLocalDescription(await c.pc.createAnswer());
    if (c.ended) return;
    await conn.request("call.accept", { call_id: c.id, sdp: c.pc.localDescription.sdp });
  } catch (error) {
    if (error.code === "conflict") return finish(c, t("calls.ended.answered_elsewhere"));
    if (error.code === "not_found") return finish(c, t("calls.already_ended"));
    return failed(c, error, "call.accept");
  }
  if (c.ended) return send("call.hangup", c); // hung up while the accept was on its way
  answered(c);
  mayTrickle(c);
}

// --- both sides --------------------------------------------------------------------------------
/** The user hangs up (or cancels, or declines). */
export function hangUp() {
  if (!call) return;
  endOnServer(call);
  finish(call);
}

export function toggleMic() {
  if (!call?.local) return;
  call.micOff = !call.micOff;
  for (const track of call.local.getAudioTracks()) track.enabled = !call.micOff;
  changed();
}

export function toggleCamera() {
  if (!call?.local) return;
  call.cameraOff = !call.cameraOff;
  for (const track of call.local.getVideoTracks()) track.enabled = !call.cameraOff;
  changed();
}

/** Media, then the peer connection, wired to the call. */
async function connect(c) {
  const local = await localMedia(c.media);
  if (c.ended) return stopStream(local);
  c.local = local;
  changed();
  const pc = await newPeerConnection();
  if (c.ended) return pc.close();
  c.pc = pc;
  for (const track of local.getTracks()) pc.addTrack(track, local);
  pc.ontrack = (event) => {
    c.remote = event.streams[0] || c.remote || new MediaStream();
    if (!c.remote.getTracks().includes(event.track)) c.remote.addTrack(event.track);
    changed();
  };
  pc.onicecandidate = (event) => {
    if (!event.candidate?.candidate) return; // end of candidates: trickle needs no marker
    const candidate = toWire(event.candidate);
    if (c.signalling) trickle(c, candidate);
    else c.localQueue.push(candidate);
  };
  pc.onconnectionstatechange = () => {
    if (c.ended) return;
    const status = pc.connectionState;
    c.unstable = status === "disconnected";
    if (status === "connected") {
      c.phase = "active";
      c.acceptedAt ||= Date.now();
    } else if (status === "failed") {
      return failed(c, new CallFailure("connection_failed"));
    }
    changed();
  };
}

function trickle(c, candidate) {
  conn.request("call.ice", { call_id: c.id, candidate }).catch(() => {});
}

function mayTrickle(c) {
  c.signalling = true;
  for (const candidate of c.localQueue.splice(0)) trickle(c, candidate);
}

async function remoteDescribed(c) {
  c.remoteSet = true;
  for (const candidate of c.remoteQueue.splice(0)) await addCandidate(c.pc, candidate);
}

/**
 * The call was answered: it runs from now, and must connect within CONNECT_MS. The callee's media
 * path may be up before the reply to its `call.accept` is back (the caller got `call.accepted`
 * first): an active call stays active.
 */
function answered(c) {
  c.acceptedAt ||= Date.now();
  clearTimeout(c.timer);
  if (c.phase !== "active") {
    c.phase = "connecting";
    c.timer = setTimeout(() => c.phase === "connecting" && failed(c, new CallFailure("connection_failed")), CONNECT_MS);
  }
  changed();
}

function ringTimeout(c) {
  const left = new Date(c.ringUntil).getTime() - Date.now();
  c.timer = setTimeout(() => finish(c, endedText(c, { reason: "timeout" })), Math.max(0, left) + RING_GRACE_MS);
}

/** The push is about the current call; or it may be, when my invite's reply is still due. */
function mine(type, data) {
  if (call && call.id === data.call_id) return call;
  if (call && call.role === "caller" && !call.id && !call.ended) early.push({ type, data });
  return null;
}

const PUSHES = {
  "call.incoming": incoming,
  "call.accepted": async (data) => {
    const c = mine("call.accepted", data);
    if (!c || c.remoteSet) return;
    answered(c);
    try {
      await c.pc.setRemoteDescription({ type: "answer", sdp: data.sdp });
      await remoteDescribed(c);
    } catch (error) {
      failed(c, new CallFailure("connection_failed", error));
    }
  },
  "call.ice": (data) => {
    const c = mine("call.ice", data);
    if (!c) return;
    if (c.remoteSet) addCandidate(c.pc, data.candidate);
    else c.remoteQueue.push(data.candidate);
  },
  "call.ended": (data) => {
    const c = mine("call.ended", data);
    if (c) finish(c, endedText(c, data));
  },
};

export function setupCalls() {
  for (const [type, handler] of Object.entries(PUSHES)) conn.on(type, handler);
  // Parley ends a call whose participant's socket is gone: so does this page when its socket goes.
  conn.onClose(() => {
    if (call) finish(call, state.screen === "app" ? endedText(call, { reason: "connection_lost", by_user_id: state.me?.user_id }) : "");
  });
  setInterval(() => call?.acceptedAt && changed(), 1000); // the running time
}
