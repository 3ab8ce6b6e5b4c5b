// Calls in words: the call messages of the timeline, drawn from the viewer's side (the caller's
// "cancelled" is the callee's "missed call"), and why a call ended.

import { state, nameOf } from "./store.js";

const MEDIA = { audio: "voice call", video: "video call" };

function capital(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** 192 -> "3 min 12 s"; 45 -> "45 s"; 3720 -> "1 h 2 min". */
export function durationText(seconds) {
  const s = Math.max(0, Math.round(seconds || 0));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  const minutes = Math.floor((s % 3600) / 60);
  return `${Math.floor(s / 3600)} h${minutes ? ` ${minutes} min` : ""}`;
}

/** 192 -> "3:12" (the running time of a call). */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const mm = `${Math.floor((s % 3600) / 60)}`.padStart(s >= 3600 ? 2 : 1, "0");
  return `${s >= 3600 ? `${Math.floor(s / 3600)}:` : ""}${mm}:${String(s % 60).padStart(2, "0")}`;
}

/** A stored call message (`message.call`) as the viewer sees it. */
export function callSummary(message) {
  const { media, outcome, duration_seconds: duration } = message.call;
  const kind = MEDIA[media] || "call";
  const mine = message.from_user_id === state.me?.user_id; // the caller
  switch (outcome) {
    case "completed": return `${capital(kind)}, ${durationText(duration)}`;
    case "declined": return mine ? `${capital(kind)}, declined` : `Declined ${kind}`;
    case "busy": return mine ? `${capital(kind)}, busy` : `Missed ${kind} (you were busy)`;
    case "cancelled": return mine ? `Cancelled ${kind}` : `Missed ${kind}`;
    default: return mine ? `${capital(kind)}, no answer` : `Missed ${kind}`; // missed
  }
}

const FAILURES = {
  insecure: "Calls need a secure page: open Parley over https (or on localhost).",
  denied: "Parley may not use your microphone or camera: permission was denied. Allow them in the browser's site settings, then try again.",
  no_device: "No microphone or camera was found.",
  device_busy: "Your microphone or camera is in use by another program.",
  media: "Your microphone or camera could not be started.",
  connection_failed: "The call could not connect: the network between you blocks it, or no relay server could be reached.",
  signalling: "The call ended: Parley could not reach the server.",
};

export function failureText(kind) {
  return FAILURES[kind] || FAILURES.media;
}

/** Why a call ended (a `call.ended` reason, from this side), or "" when nothing needs saying. */
export function endedText(call, { reason, by_user_id: by, duration_seconds: duration }) {
  const peer = nameOf(call.peerId);
  const byMe = by === state.me?.user_id;
  const lasted = duration ? ` (${durationText(duration)})` : "";
  switch (reason) {
    case "declined": return byMe ? "You declined the call on another device." : `${peer} declined the call.`;
    case "busy": return `${peer} is busy in another call.`;
    case "offline": return `${peer} is offline. Try again later.`;
    case "timeout": return call.role === "caller" ? `No answer from ${peer}.` : `Missed call from ${peer}.`;
    case "cancelled": return `Missed call from ${peer}.`;
    case "answered_elsewhere": return "The call was answered on another device.";
    case "connection_lost": return byMe ? "The call was cut off: your connection to Parley dropped." : `The call was cut off: ${peer}'s connection dropped.`;
    case "hangup": return byMe ? `Call ended on another device${lasted}.` : `${peer} hung up${lasted}.`;
    default: return "The call ended.";
  }
}
