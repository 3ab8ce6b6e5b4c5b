// WebRTC pieces of a call, without its signalling: the camera and microphone, the peer
// connection built from `calls.ice_servers`, and ICE candidates in the protocol's field names.

import { conn } from "./wire.js";

const RELAY_KEY = "parley.forceRelay";

/** A failure of the call's own machinery, named by kind (calltext.js says it in words). */
export class CallFailure extends Error {
  constructor(kind, cause = undefined) {
    super(kind);
    this.kind = kind;
    this.cause = cause;
  }
}

/** Relay-only ICE (every packet through TURN): `?relay=1` on the page, or localStorage
 * `parley.forceRelay` = "1"; for tests and for networks where direct paths leak or fail. */
export function forceRelay() {
  const query = new URLSearchParams(location.search).get("relay");
  const value = query ?? localStorage.getItem(RELAY_KEY) ?? "";
  return value === "1" || value === "true";
}

/** The microphone, and the camera for a video call. Throws CallFailure with why not. */
export async function localMedia(media) {
  if (!navigator.mediaDevices?.getUserMedia) throw new CallFailure("insecure");
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: media === "video" });
  } catch (error) {
    const kind = {
      NotAllowedError: "denied", SecurityError: "denied", NotFoundError: "no_device",
      OverconstrainedError: "no_device", NotReadableError: "device_busy", AbortError: "device_busy",
    }[error?.name] || "media";
    throw new CallFailure(kind, error);
  }
}

/** A peer connection with the gateway's STUN/TURN servers (asked afresh: TURN passwords expire). */
export async function newPeerConnection() {
  const reply = await conn.request("calls.ice_servers", {});
  const iceServers = (reply.ice_servers || []).map(({ urls, username, credential }) => (
    username ? { urls, username, credential } : { urls }
  ));
  return new RTCPeerConnection({ iceServers, iceTransportPolicy: forceRelay() ? "relay" : "all" });
}

/** RTCIceCandidate -> the protocol's `candidate` object (absent fields left out). */
export function toWire(candidate) {
  const json = candidate.toJSON ? candidate.toJSON() : candidate;
  const wire = { candidate: json.candidate || "" };
  if (json.sdpMid != null) wire.sdp_mid = json.sdpMid;
  if (json.sdpMLineIndex != null) wire.sdp_mline_index = json.sdpMLineIndex;
  if (json.usernameFragment != null) wire.username_fragment = json.usernameFragment;
  return wire;
}

/** Add a candidate from the wire; "" is the end of the peer's candidates. */
export async function addCandidate(pc, wire) {
  const init = { candidate: wire.candidate, sdpMid: wire.sdp_mid ?? null, sdpMLineIndex: wire.sdp_mline_index ?? null };
  if (wire.username_fragment) init.usernameFragment = wire.username_fragment;
  if (init.sdpMid === null && init.sdpMLineIndex === null) init.sdpMLineIndex = 0;
  try {
    await pc.addIceCandidate(init);
  } catch (error) {
    console.warn("ICE candidate refused", error); // one bad candidate does not end a call
  }
}

export function stopStream(stream) {
  for (const track of stream?.getTracks() || []) track.stop();
}
