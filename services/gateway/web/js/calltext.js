// Calls in words: the call messages of the timeline, drawn from the viewer's side (the caller's
// "cancelled" is the callee's "missed call"), and why a call ended.

import { state, nameOf } from "./store.js";
import { t } from "./i18n.js";

/** 192 -> "3 min 12 s" (3分12秒); 45 -> "45 s"; 3720 -> "1 h 2 min". */
export function durationText(seconds) {
  const s = Math.max(0, Math.round(seconds || 0));
  if (s < 60) return t("time.duration_s", { count: s });
  if (s < 3600) {
    const minutes = Math.floor(s / 60);
    return s % 60 ? t("time.duration_min_s", { minutes, seconds: s % 60 }) : t("time.duration_min", { count: minutes });
  }
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  return minutes ? t("time.duration_h_min", { hours, minutes }) : t("time.duration_h", { count: hours });
}

/** 192 -> "3:12" (the running time of a call). */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const mm = `${Math.floor((s % 3600) / 60)}`.padStart(s >= 3600 ? 2 : 1, "0");
  return `${s >= 3600 ? `${Math.floor(s / 3600)}:` : ""}${mm}:${String(s % 60).padStart(2, "0")}`;
}

// outcome -> [voice, video] words, for the caller ("mine") and for the callee.
const SUMMARY = {
  completed: {
    mine: [(d) => t("calls.summary.voice_completed", d), (d) => t("calls.summary.video_completed", d)],
    theirs: [(d) => t("calls.summary.voice_completed", d), (d) => t("calls.summary.video_completed", d)],
  },
  declined: {
    mine: [() => t("calls.summary.voice_declined_mine"), () => t("calls.summary.video_declined_mine")],
    theirs: [() => t("calls.summary.voice_declined"), () => t("calls.summary.video_declined")],
  },
  busy: {
    mine: [() => t("calls.summary.voice_busy_mine"), () => t("calls.summary.video_busy_mine")],
    theirs: [() => t("calls.summary.voice_missed_busy"), () => t("calls.summary.video_missed_busy")],
  },
  cancelled: {
    mine: [() => t("calls.summary.voice_cancelled"), () => t("calls.summary.video_cancelled")],
    theirs: [() => t("calls.summary.voice_missed"), () => t("calls.summary.video_missed")],
  },
  missed: {
    mine: [() => t("calls.summary.voice_no_answer"), () => t("calls.summary.video_no_answer")],
    theirs: [() => t("calls.summary.voice_missed"), () => t("calls.summary.video_missed")],
  },
};

/** A stored call message (`message.call`) as the viewer sees it. */
export function callSummary(message) {
  const { media, outcome, duration_seconds: duration } = message.call;
  const mine = message.from_user_id === state.me?.user_id; // the caller
  const words = SUMMARY[outcome] || SUMMARY.missed;
  return (mine ? words.mine : words.theirs)[media === "video" ? 1 : 0]({ duration: durationText(duration) });
}

const FAILURES = {
  insecure: () => t("calls.failure.insecure"),
  denied: () => t("calls.failure.denied"),
  no_device: () => t("calls.failure.no_device"),
  device_busy: () => t("calls.failure.device_busy"),
  media: () => t("calls.failure.media"),
  connection_failed: () => t("calls.failure.connection_failed"),
  signalling: () => t("calls.failure.signalling"),
};

export function failureText(kind) {
  return (FAILURES[kind] || FAILURES.media)();
}

/** Why a call ended (a `call.ended` reason, from this side), or "" when nothing needs saying. */
export function endedText(call, { reason, by_user_id: by, duration_seconds: duration }) {
  const peer = nameOf(call.peerId);
  const byMe = by === state.me?.user_id;
  switch (reason) {
    case "declined": return byMe ? t("calls.ended.declined_elsewhere") : t("calls.ended.declined", { peer });
    case "busy": return t("calls.ended.busy", { peer });
    case "offline": return t("calls.ended.offline", { peer });
    case "timeout": return call.role === "caller" ? t("calls.ended.no_answer", { peer }) : t("calls.ended.missed", { peer });
    case "cancelled": return t("calls.ended.missed", { peer });
    case "answered_elsewhere": return t("calls.ended.answered_elsewhere");
    case "connection_lost": return byMe ? t("calls.ended.my_connection_lost") : t("calls.ended.connection_lost", { peer });
    case "hangup":
      if (byMe) return duration ? t("calls.ended.elsewhere_after", { duration: durationText(duration) }) : t("calls.ended.elsewhere");
      return duration ? t("calls.ended.hung_up_after", { peer, duration: durationText(duration) }) : t("calls.ended.hung_up", { peer });
    default: return t("calls.ended.other");
  }
}
