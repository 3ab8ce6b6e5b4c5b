// The call views: voice and video buttons in a direct chat's header, the incoming-call card (on
// every device of the callee), the in-call screen (the peer's video large, mine small, mute,
// camera off, hang up, running time; the peer's name instead of video on a voice call), and a
// notice saying why a call ended or could not start.

import { state, openConv, nameOf } from "../store.js";
import { h, icon, setText, setAttr } from "../dom.js";
import { userAvatar } from "./avatar.js";
import { currentCall, callNotice, startCall, accept, hangUp, toggleMic, toggleCamera, notify } from "../calls.js";
import { clock } from "../calltext.js";
import { t } from "../i18n.js";

const STATUS = {
  preparing: () => t("calls.starting"),
  ringing: () => t("calls.ringing"),
  answering: () => t("calls.connecting"),
  connecting: () => t("calls.connecting"),
};

function byId(id) {
  return document.getElementById(id);
}

/** A button's content: an icon and a word (the word is its accessible name). */
function label(button, iconName, text) {
  if (button.dataset.label === `${iconName}:${text}`) return;
  button.dataset.label = `${iconName}:${text}`;
  button.replaceChildren(icon(iconName), h("span", {}, text));
}

/** Show `stream` in `video` (once per stream: re-assigning restarts playback). */
function attach(video, stream) {
  if (video.srcObject === (stream || null)) return;
  video.srcObject = stream || null;
  if (stream) video.play().catch(() => {}); // autoplay refused: the user's next click plays it
}

function setAvatar(slot, userId) {
  const name = nameOf(userId);
  const url = state.users.get(userId)?.avatar_url || "";
  if (slot.dataset.for === `${userId}:${name}:${url}`) return;
  slot.dataset.for = `${userId}:${name}:${url}`;
  slot.replaceChildren(userAvatar(userId));
}

export function setupCall() {
  const audioButton = byId("call-audio");
  const videoButton = byId("call-video");
  const layout = byId("layout");
  const incoming = byId("incoming-call");
  const incomingAvatar = byId("incoming-avatar");
  const incomingName = byId("incoming-name");
  const incomingWhat = byId("incoming-what");
  const acceptButton = byId("call-accept");
  const screen = byId("call-screen");
  const remoteVideo = byId("remote-video");
  const localVideo = byId("local-video");
  const peerAvatar = byId("call-avatar");
  const peerName = byId("call-peer-name");
  const status = byId("call-status");
  const mute = byId("call-mute");
  const camera = byId("call-camera");
  const hangup = byId("call-hangup");
  const noticeBox = byId("call-notice");
  const noticeText = byId("call-notice-text");

  audioButton.append(icon("phone"));
  videoButton.append(icon("video"));
  audioButton.addEventListener("click", () => startCall(openConv(), "audio"));
  videoButton.addEventListener("click", () => startCall(openConv(), "video"));
  acceptButton.prepend(icon("phone"));
  acceptButton.addEventListener("click", accept);
  byId("call-decline").prepend(icon("phone-off"));
  byId("call-decline").addEventListener("click", hangUp);
  hangup.addEventListener("click", hangUp);
  mute.addEventListener("click", toggleMic);
  camera.addEventListener("click", toggleCamera);
  byId("call-notice-dismiss").addEventListener("click", () => notify(""));
  // The peer's picture replaces their name once their video really plays.
  for (const event of ["loadeddata", "resize", "emptied"]) {
    remoteVideo.addEventListener(event, () => screen.classList.toggle("has-video", remoteVideo.videoWidth > 0));
  }

  function renderButtons(call) {
    const conv = openConv();
    const direct = conv?.kind === "direct";
    const friend = direct && state.friends.has(conv.peerId);
    const why = !friend ? t("calls.only_friends") : call ? t("calls.in_a_call") : !state.bound ? t("calls.not_connected") : "";
    const name = direct ? nameOf(conv.peerId) : "";
    for (const [button, what] of [[audioButton, t("calls.voice_call_with", { name })], [videoButton, t("calls.video_call_with", { name })]]) {
      button.hidden = !direct;
      button.disabled = Boolean(why);
      setAttr(button, "title", why || what);
    }
  }

  function renderIncoming(call) {
    const ringing = call?.phase === "incoming";
    if (ringing && incoming.hidden) queueMicrotask(() => acceptButton.focus());
    incoming.hidden = !ringing;
    if (!ringing) return;
    setAvatar(incomingAvatar, call.peerId);
    setText(incomingName, nameOf(call.peerId));
    setText(incomingWhat, call.media === "video" ? t("calls.incoming_video") : t("calls.incoming_voice"));
  }

  function renderScreen(call) {
    const shown = Boolean(call) && call.phase !== "incoming";
    screen.hidden = !shown;
    layout.inert = Boolean(call);
    attach(remoteVideo, shown ? call.remote : null);
    attach(localVideo, shown && call.media === "video" ? call.local : null);
    if (!shown) return;
    screen.dataset.phase = call.phase;
    screen.classList.toggle("audio-only", call.media === "audio");
    screen.classList.toggle("camera-off", call.cameraOff);
    setAvatar(peerAvatar, call.peerId);
    setText(peerName, nameOf(call.peerId));
    let text = STATUS[call.phase]?.() || "";
    if (call.phase === "ringing") text = t("calls.calling", { name: nameOf(call.peerId) });
    if (call.phase === "active") text = call.unstable ? t("calls.reconnecting") : clock((Date.now() - call.acceptedAt) / 1000);
    setText(status, text);
    // Toggle buttons: a fixed name, pressed or not (the icon follows).
    label(mute, call.micOff ? "mic-off" : "mic", t("calls.mute"));
    setAttr(mute, "aria-pressed", String(call.micOff));
    camera.hidden = call.media !== "video";
    label(camera, call.cameraOff ? "video-off" : "video", t("calls.camera_off"));
    setAttr(camera, "aria-pressed", String(call.cameraOff));
    label(hangup, "phone-off", call.phase === "ringing" || call.phase === "preparing" ? t("calls.cancel") : t("calls.hang_up"));
  }

  return function renderCall() {
    const call = currentCall();
    renderButtons(call);
    renderIncoming(call);
    renderScreen(call);
    const notice = callNotice();
    noticeBox.hidden = !notice;
    setText(noticeText, notice?.text || "");
  };
}
