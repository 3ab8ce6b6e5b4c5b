// Voice messages (docs/protocol.md "Voice messages and thumbnails").
// Recording: the composer's microphone button starts a MediaRecorder (Opus in WebM where the
// browser has it); a bar with a running timer replaces the composer, with Cancel and Send; at
// 15 minutes the recording stops and is sent. Send hands the recording (a File of the base
// audio type) and its length in milliseconds to the composer, which uploads and sends it.
// Playing: a play/pause button, a progress bar that moves and seeks on a click (or the arrow
// keys), and the time. The length comes from the message's `voice.duration_ms`: recorded WebM
// often says nothing of its duration. The audio is fetched (with the token) on first play.

import { h, icon } from "../dom.js";
import { token } from "../session.js";
import { objectUrl } from "../files.js";
import { describe } from "../errors.js";
import { showError } from "../wire.js";
import { mediaIcon } from "./media.js";
import { t, applyTranslations, onLocaleChange } from "../i18n.js";

export const MAX_VOICE_MS = 15 * 60 * 1000; // the server takes duration_ms up to 900,000
const TYPES = ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus", "audio/mp4"];
const EXTENSIONS = { "audio/webm": "webm", "audio/ogg": "ogg", "audio/mp4": "m4a" };
const SEEK_STEP_S = 5;

/** m:ss (h:mm:ss past an hour). */
export function clock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const s = String(total % 60).padStart(2, "0");
  const m = Math.floor(total / 60);
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function recordingType() {
  return TYPES.find((type) => MediaRecorder.isTypeSupported(type)) || "";
}

// --- recording -----------------------------------------------------------------------------------
/**
 * `button`: the microphone; `form`: the composer, hidden while recording; `onRecorded(file,
 * durationMs, context)` gets what was recorded, with what `begin()` returned when it started
 * (the conversation it is for). Returns {cancel(), context(), block(blocked)}.
 */
export function setupRecorder({ button, form, begin, onRecorded }) {
  const timer = h("span", { class: "voice-timer", dataset: { testid: "voice-timer" } }, "0:00");
  const cancel = h("button", {
    type: "button", class: "ghost icon-button voice-cancel", "data-i18n-title": "common.cancel", "data-i18n-aria-label": "voice.cancel",
    dataset: { testid: "voice-cancel" },
  }, icon("trash"));
  const send = h("button", {
    type: "button", class: "primary voice-send", "data-i18n-title": "chat.send", "data-i18n-aria-label": "voice.send",
    dataset: { testid: "voice-send" },
  }, mediaIcon("send"), h("span", { "data-i18n": "chat.send" }));
  const limit = h("span", { class: "muted small voice-limit" });
  const bar = h("div", { class: "voice-recorder", role: "group", "data-i18n-aria-label": "voice.recording_label", hidden: true, dataset: { testid: "voice-recorder" } },
    cancel, h("span", { class: "voice-dot", "aria-hidden": "true" }), timer, limit, send);
  form.after(bar);
  const translate = () => {
    applyTranslations(bar);
    limit.textContent = t("voice.recording", { limit: clock(MAX_VOICE_MS) });
  };
  translate();
  onLocaleChange(translate);

  let session = null; // {recorder, stream, chunks, startedAt, context, ticker, limit}
  let starting = false; // asking for the microphone
  let blocked = false; // the composer may not send now
  const enable = () => (button.disabled = starting || blocked);

  async function start() {
    if (session || starting) return;
    if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === "undefined") {
      showError(() => t("voice.unsupported"));
      return;
    }
    const context = begin();
    if (!context) return;
    starting = true;
    enable();
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    } catch (error) {
      starting = false;
      enable();
      const detail = String(error?.message || error);
      showError(() => (error?.name === "NotFoundError" ? t("voice.no_microphone")
        : error?.name === "NotAllowedError" ? t("voice.denied")
          : t("voice.microphone_failed", { detail })));
      return;
    }
    starting = false;
    enable();
    const type = recordingType();
    let recorder;
    try {
      recorder = new MediaRecorder(stream, type ? { mimeType: type, audioBitsPerSecond: 32000 } : {});
    } catch (error) {
      for (const track of stream.getTracks()) track.stop();
      const detail = String(error?.message || error);
      showError(() => t("voice.recording_failed", { detail }));
      return;
    }
    const chunks = [];
    recorder.addEventListener("dataavailable", (event) => {
      if (event.data.size) chunks.push(event.data);
    });
    recorder.start(1000);
    session = { recorder, stream, chunks, context, startedAt: performance.now() };
    session.ticker = setInterval(tick, 250);
    session.limit = setTimeout(() => finish(true), MAX_VOICE_MS);
    form.hidden = true;
    bar.hidden = false;
    tick();
    send.focus();
  }

  function tick() {
    if (session) timer.textContent = clock(performance.now() - session.startedAt);
  }

  /** Stop recording; `keep`: hand the recording over, else throw it away. */
  async function finish(keep) {
    const current = session;
    if (!current) return;
    session = null;
    clearInterval(current.ticker);
    clearTimeout(current.limit);
    const durationMs = Math.min(MAX_VOICE_MS, Math.max(1, Math.round(performance.now() - current.startedAt)));
    if (current.recorder.state !== "inactive") {
      await new Promise((resolve) => {
        current.recorder.addEventListener("stop", resolve, { once: true });
        current.recorder.stop();
      });
    }
    for (const track of current.stream.getTracks()) track.stop();
    bar.hidden = true;
    form.hidden = false;
    timer.textContent = "0:00";
    if (!keep) return;
    const type = (current.recorder.mimeType || recordingType() || "audio/webm").split(";")[0];
    const blob = new Blob(current.chunks, { type });
    if (!blob.size) {
      showError(() => t("voice.nothing_recorded"));
      return;
    }
    const stamp = new Date().toISOString().slice(0, 19).replace(/[T:]/g, "-");
    const file = new File([blob], `voice-${stamp}.${EXTENSIONS[type] || "webm"}`, { type });
    onRecorded(file, durationMs, current.context);
  }

  button.addEventListener("click", start);
  cancel.addEventListener("click", () => finish(false));
  send.addEventListener("click", () => finish(true));
  bar.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      finish(false);
    }
  });

  return {
    cancel: () => finish(false),
    /** What `begin()` returned for the recording under way, or null. */
    context: () => session?.context ?? null,
    /** The composer may not send now (muted, removed…): the microphone is disabled too. */
    block(value) {
      blocked = value;
      enable();
    },
  };
}

// --- playing -------------------------------------------------------------------------------------
let playing = null; // the <audio> playing now: one voice message at a time

/** The player of a voice message: `file` (audio) and `voice` ({duration_ms}). */
export function voicePlayer(file, voice) {
  const durationS = Math.max(0.001, (voice.duration_ms || 0) / 1000);
  const audio = h("audio", { preload: "none", hidden: true, dataset: { testid: "voice-audio" } });
  const play = h("button", {
    type: "button", class: "voice-play", "aria-label": t("voice.play_label"), title: t("voice.play"),
    dataset: { testid: "voice-play" },
  }, mediaIcon("play"));
  const fill = h("span", { class: "voice-fill", dataset: { testid: "voice-fill" } });
  const track = h("span", {
    class: "voice-track", role: "slider", tabindex: "0", "aria-label": t("voice.position"),
    "aria-valuemin": "0", "aria-valuemax": String(Math.round(durationS)), "aria-valuenow": "0",
    "aria-valuetext": t("voice.position_of", { at: "0:00", total: clock(voice.duration_ms) }), dataset: { testid: "voice-progress" },
  }, fill);
  const time = h("span", { class: "voice-time small", dataset: { testid: "voice-time" } }, clock(voice.duration_ms));
  const el = h("div", { class: "voice", dataset: { testid: "voice-player", state: "paused" } }, play, track, time, audio);
  let loading = null;
  let frame = 0;

  function load() {
    loading ||= objectUrl(file.file_id, token(), file).then((url) => {
      audio.src = url;
    }, (error) => {
      loading = null;
      time.textContent = describe(error, "download");
      el.classList.add("failed");
      throw error;
    });
    return loading;
  }

  function draw() {
    const fraction = Math.min(1, audio.currentTime / durationS);
    fill.style.width = `${(fraction * 100).toFixed(2)}%`;
    const started = audio.currentTime > 0 || !audio.paused;
    time.textContent = started ? `${clock(audio.currentTime * 1000)} / ${clock(voice.duration_ms)}` : clock(voice.duration_ms);
    track.setAttribute("aria-valuenow", String(Math.round(audio.currentTime)));
    track.setAttribute("aria-valuetext", t("voice.position_of", { at: clock(audio.currentTime * 1000), total: clock(voice.duration_ms) }));
  }

  function animate() {
    draw();
    frame = audio.paused ? 0 : requestAnimationFrame(animate);
  }

  function setPlaying(on) {
    el.dataset.state = on ? "playing" : "paused";
    play.replaceChildren(mediaIcon(on ? "pause" : "play"));
    play.setAttribute("aria-label", on ? t("voice.pause_label") : t("voice.play_label"));
    play.title = on ? t("voice.pause") : t("voice.play");
  }

  async function toggle() {
    if (!audio.paused) {
      audio.pause();
      return;
    }
    try {
      await load();
      if (playing && playing !== audio) playing.pause();
      playing = audio;
      await audio.play();
    } catch (error) {
      if (error?.name !== "AbortError") showError(error?.code ? error : () => t("voice.play_failed"), "download");
    }
  }

  async function seek(fraction) {
    try {
      await load();
    } catch {
      return;
    }
    audio.currentTime = Math.max(0, Math.min(1, fraction)) * durationS;
    draw();
  }

  play.addEventListener("click", toggle);
  audio.addEventListener("play", () => {
    setPlaying(true);
    if (!frame) frame = requestAnimationFrame(animate);
  });
  audio.addEventListener("pause", () => setPlaying(false));
  audio.addEventListener("timeupdate", draw);
  audio.addEventListener("seeked", draw);
  audio.addEventListener("ended", () => {
    setPlaying(false);
    audio.currentTime = 0;
    draw();
  });
  track.addEventListener("click", (event) => {
    const rect = track.getBoundingClientRect();
    if (rect.width > 0) seek((event.clientX - rect.left) / rect.width);
  });
  track.addEventListener("keydown", (event) => {
    const step = event.key === "ArrowRight" ? SEEK_STEP_S : event.key === "ArrowLeft" ? -SEEK_STEP_S : 0;
    if (event.key === "Home" || event.key === "End" || step) {
      event.preventDefault();
      const at = event.key === "Home" ? 0 : event.key === "End" ? durationS : audio.currentTime + step;
      seek(at / durationS);
    } else if (event.key === " " || event.key === "Enter") {
      event.preventDefault();
      toggle();
    }
  });
  return el;
}
