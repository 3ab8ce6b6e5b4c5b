"""Encrypted groups with Megolm (docs/security.md "Encrypted groups (step two: Megolm)"),
without any network: this device's outbound session per group conversation and when it
rotates, the `room_key` payloads that share it (sent over Olm by the manager), the inbound
sessions shared with this device, and what a `megolm.v1` message opens to.

Everything lives in the device's sealed store (pickles encrypted with the pickle key).
"""
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import vodozemac

from parley_client.e2e.device import PAYLOAD_VERSION, DecryptionError, Device, DeviceKeys
from parley_client.e2e.primitives import E2EError
from parley_client.e2e.store import StoredMessage

ALGORITHM = "megolm.v1"
MAX_MESSAGES = 100  # a new session after this many messages on one
MAX_AGE_SECONDS = 7 * 24 * 3600  # or after 7 days
MAX_CIPHERTEXT_CHARS = 22_000
# Messages kept for a room key that has not come, in bytes of their JSON (docs/security.md):
# past it the oldest are dropped from the store (they stay on the server, unread here).
MAX_WAITING_BYTES = 8 * 1024 * 1024


class WaitingForKey(DecryptionError):
    """A group message whose room key this device has not got (yet): kept, opened when it comes."""

    def __init__(self, session_id: str, message_id: str | None = None):
        super().__init__("waiting_for_key", f"no room key for Megolm session {session_id[:12]}… yet", message_id)
        self.session_id = session_id


def _targets(devices: Iterable[DeviceKeys]) -> list[list[str]]:
    return sorted([d.user_id, d.device_id, d.identity_key] for d in devices)


class Megolm:
    """One device's Megolm state: `Device` for Olm, pins and the store."""

    def __init__(self, device: Device, clock: Any = time.time):
        self.device = device
        self.store = device.store
        self.clock = clock

    # --- sending ----------------------------------------------------------------------------------
    def needs_rotation(self, conversation_id: str, devices: Iterable[DeviceKeys]) -> bool:
        """A new outbound session is due (docs/security.md "Rotation"): none yet, 100 messages or
        7 days on it, or the group's members or their devices changed since it was shared."""
        out = self.store.outbound.get(conversation_id)
        return (out is None or out["stale"] or out["messages"] >= MAX_MESSAGES
                or self.clock() - out["created_at"] >= MAX_AGE_SECONDS or out["shared_with"] != _targets(devices))

    def rotate(self, conversation_id: str, devices: Iterable[DeviceKeys]) -> dict[str, Any]:
        """A fresh outbound session for the conversation, to be shared with `devices` (the other
        devices of every member, mine included); its `room_key` payload. This device keeps an
        inbound copy, to read its own messages in history."""
        session = vodozemac.GroupSession()
        key = self.device.store.pickle_key
        self.store.outbound[conversation_id] = {
            "pickle": session.pickle(key), "session_id": session.session_id, "created_at": self.clock(),
            "messages": 0, "shared_with": _targets(devices), "stale": False}
        inbound = vodozemac.InboundGroupSession(session.session_key)
        self.store.inbound[session.session_id] = {
            "pickle": inbound.pickle(key), "conversation_id": conversation_id, "sender_key": self.device.identity_key,
            "user_id": self.device.user_id, "device_id": self.device.device_id, "first_index": 0}
        self.store.save()
        return self.room_key(conversation_id, session)

    def room_key(self, conversation_id: str, session: vodozemac.GroupSession) -> dict[str, Any]:
        return self.device.payload(conversation_id, "room_key", session_id=session.session_id,
                                   session_key=session.session_key.to_base64(), index=session.message_index)

    def mark_stale(self, conversation_id: str | None = None) -> None:
        """The membership changed (a member joined, left or was removed; a device came or went):
        the next message starts a new session. `None`: every group's."""
        for cid, out in self.store.outbound.items():
            if conversation_id is None or cid == conversation_id:
                out["stale"] = True
        self.store.save()

    def session_id(self, conversation_id: str) -> str | None:
        out = self.store.outbound.get(conversation_id)
        return None if out is None else str(out["session_id"])

    def encrypt(self, conversation_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The `megolm.v1` envelope of the payload, from the conversation's outbound session."""
        out = self.store.outbound.get(conversation_id)
        if out is None:
            raise E2EError("no outbound Megolm session for this group yet (rotate first)")
        key = self.store.pickle_key
        session = vodozemac.GroupSession.from_pickle(out["pickle"], key)
        plaintext = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        ciphertext = session.encrypt(plaintext).to_base64()
        if len(ciphertext) > MAX_CIPHERTEXT_CHARS:
            raise E2EError(f"the encrypted message is {len(ciphertext)} characters; the server takes "
                           f"{MAX_CIPHERTEXT_CHARS}")
        out["pickle"], out["messages"] = session.pickle(key), out["messages"] + 1
        self.store.save()  # an index is never used twice, even if this process dies now
        return {"algorithm": ALGORITHM, "sender_key": self.device.identity_key, "session_id": session.session_id,
                "ciphertext": ciphertext}

    # --- receiving --------------------------------------------------------------------------------
    def accept_room_key(self, sender_key: str, payload: Mapping[str, Any], members: Iterable[str] | None) -> str:
        """A `room_key` payload that came over Olm from the device whose identity key is
        `sender_key`; kept if that device is pinned for a member of the conversation named
        (`members`: its members, `None` when unknown: refused). The session id.
        `DecryptionError` (`bad_payload` / `unknown_sender`) otherwise."""
        sender = self.device.device_by_identity(sender_key)
        conversation_id = payload.get("conversation_id")
        session_id, session_key = payload.get("session_id"), payload.get("session_key")
        if not (isinstance(conversation_id, str) and isinstance(session_id, str) and isinstance(session_key, str)):
            raise DecryptionError("bad_payload", "a room key without conversation_id, session_id or session_key")
        if sender is None or sender[2]["removed"]:
            raise DecryptionError("unknown_sender", "a room key from a device that is not pinned")
        user_id, device_id = sender[0], sender[1]
        if payload.get("sender") not in (None, {"user_id": user_id, "device_id": device_id}):
            raise DecryptionError("bad_payload", "the room key names another sender than the Olm session's")
        if members is None or user_id not in set(members):
            raise DecryptionError("unknown_sender", f"{user_id} is not a member of {conversation_id}")
        if conversation_id not in self.store.encrypted_groups.values():
            raise DecryptionError("bad_payload", f"{conversation_id} is not an encrypted group of mine")
        try:
            inbound = vodozemac.InboundGroupSession(vodozemac.SessionKey(session_key))
        except (vodozemac.SessionKeyDecodeException, ValueError):
            try:
                inbound = vodozemac.InboundGroupSession.import_session(vodozemac.ExportedSessionKey(session_key))
            except (vodozemac.SessionKeyDecodeException, ValueError) as exc:
                raise DecryptionError("bad_payload", "the room key's session_key is not a Megolm key") from exc
        if inbound.session_id != session_id:
            raise DecryptionError("bad_payload", "the room key's session_id is not its key's")
        known = self.store.inbound.get(session_id)
        if known is not None:
            if (known["conversation_id"], known["sender_key"]) != (conversation_id, sender_key):
                raise DecryptionError("bad_payload", "a room key for a session known under another sender or group")
            if known["first_index"] <= inbound.first_known_index:
                return session_id  # the one kept opens as much already
        self.store.inbound[session_id] = {
            "pickle": inbound.pickle(self.store.pickle_key), "conversation_id": conversation_id,
            "sender_key": sender_key, "user_id": user_id, "device_id": device_id,
            "first_index": inbound.first_known_index}
        self.store.save()
        return session_id

    def decrypt_message(self, message: Mapping[str, Any]) -> StoredMessage:
        """A message carrying a `megolm.v1` envelope, as this device can show it (the copy kept if
        it was seen); `WaitingForKey` when its session's key has not come, `DecryptionError` when
        it must not be shown (tampered, replayed, from another sender or conversation, or sent
        before this device got the key)."""
        message_id = str(message["message_id"])
        kept = self.store.messages.get(message_id)
        if kept is not None:
            return kept
        envelope = message.get("encrypted")
        if not isinstance(envelope, Mapping) or envelope.get("algorithm") != ALGORITHM:
            raise DecryptionError("bad_payload", "not a megolm.v1 envelope", message_id)
        session_id, ciphertext = str(envelope.get("session_id", "")), str(envelope.get("ciphertext", ""))
        sender_key = str(envelope.get("sender_key", ""))
        conversation_id, from_user_id = str(message.get("conversation_id")), str(message.get("from_user_id", ""))
        known = self.store.inbound.get(session_id)
        if known is None:
            raise WaitingForKey(session_id, message_id)
        if known["conversation_id"] != conversation_id:
            raise DecryptionError("bad_payload", "the message's session was shared for another conversation", message_id)
        if known["sender_key"] != sender_key or known["user_id"] != from_user_id:
            raise DecryptionError("unknown_sender", "the session was not shared by the sender's device", message_id)
        pinned = self.device.device_by_identity(sender_key)
        if sender_key != self.device.identity_key and (
                pinned is None or pinned[:2] != (from_user_id, known["device_id"]) or pinned[2]["removed"]):
            raise DecryptionError("unknown_sender", f"{sender_key[:12]}… is not a pinned device of {from_user_id}",
                                  message_id)
        try:
            megolm = vodozemac.MegolmMessage.from_base64(ciphertext)
        except (vodozemac.DecodeException, ValueError) as exc:
            raise DecryptionError("tampered", "not a Megolm message", message_id) from exc
        index = megolm.message_index()
        if index < known["first_index"]:
            raise DecryptionError("not_for_this_device", "sent before this device was given the room key "
                                  "(before it joined, or before it was added)", message_id)
        seen = f"{session_id}:{index}"
        earlier = self.store.megolm_seen.get(seen)
        if earlier is not None and earlier != message_id:
            raise DecryptionError("replayed", f"this Megolm message index was already received as message {earlier}",
                                  message_id)
        inbound = vodozemac.InboundGroupSession.from_pickle(known["pickle"], self.store.pickle_key)
        try:
            plaintext = inbound.decrypt(megolm).plaintext
        except (vodozemac.MegolmDecryptionException, ValueError) as exc:
            raise DecryptionError("tampered", "the message does not authenticate", message_id) from exc
        try:
            payload = json.loads(plaintext)
        except ValueError:
            payload = None
        if (not isinstance(payload, dict) or not isinstance(payload.get("type"), str)
                or payload.get("v", PAYLOAD_VERSION) != PAYLOAD_VERSION or payload["type"] == "room_key"):
            raise DecryptionError("bad_payload", "the plaintext is not a Parley payload", message_id)
        if payload.get("conversation_id") != conversation_id:
            raise DecryptionError("bad_payload", "the payload belongs to another conversation", message_id)
        if "sender" in payload and payload["sender"] != {"user_id": from_user_id, "device_id": known["device_id"]}:
            raise DecryptionError("bad_payload", "the payload names another sender than the session's", message_id)
        earlier = self.store.seen_payloads.get(str(payload["id"])) if "id" in payload else None
        if earlier is not None and earlier != message_id:
            raise DecryptionError("replayed", f"this payload was already received as message {earlier}", message_id)
        self.store.megolm_seen[seen] = message_id
        self.store.seen_ciphertexts[hashlib.sha256(ciphertext.encode()).hexdigest()[:32]] = message_id
        record = StoredMessage(message_id=message_id, conversation_id=conversation_id, seq=int(message["seq"]),
                               from_user_id=from_user_id, sender_device_id=known["device_id"],
                               sent_at=str(message["sent_at"]), payload=payload, source="decrypted")
        self.store.messages[message_id] = record
        if "id" in payload:
            self.store.seen_payloads[str(payload["id"])] = message_id
        self.store.save()
        return record

    # --- messages waiting for their key -----------------------------------------------------------
    def keep_waiting(self, session_id: str, event: str, message: Mapping[str, Any]) -> list[str]:
        """Keep a message (as the server sent it: ciphertext) until its session's key comes.

        A key may never come (its sender's device gone), so what waits is bounded: past
        MAX_WAITING_BYTES the oldest kept messages are dropped, and their ids returned. They stay
        on the server; this device shows them as never opened."""
        waiting = self.store.waiting.setdefault(session_id, [])
        key = (event, message.get("message_id"), message.get("edited_at"))
        if any((w["event"], w["data"].get("message_id"), w["data"].get("edited_at")) == key for w in waiting):
            return []
        entry = {"event": event, "data": dict(message), "bytes": len(json.dumps(message)), "kept": time.time()}
        waiting.append(entry)
        dropped = self._drop_oldest_waiting()
        self.store.save()
        return dropped

    def _drop_oldest_waiting(self) -> list[str]:
        entries = [(float(w.get("kept", 0.0)), sid, w) for sid, ws in self.store.waiting.items() for w in ws]
        for _, _, w in entries:  # kept by a client before the bound: measured now
            w.setdefault("bytes", len(json.dumps(w["data"])))
        total = sum(int(w["bytes"]) for _, _, w in entries)
        dropped: list[str] = []
        for _, sid, w in sorted(entries, key=lambda e: e[0]):
            if total <= MAX_WAITING_BYTES:
                break
            self.store.waiting[sid].remove(w)
            if not self.store.waiting[sid]:
                del self.store.waiting[sid]
            total -= int(w["bytes"])
            dropped.append(str(w["data"].get("message_id")))
        return dropped

    def take_waiting(self, session_id: str) -> list[dict[str, Any]]:
        """The messages that waited for this session, by conversation and seq; no longer kept."""
        waiting = self.store.waiting.pop(session_id, [])
        if waiting:
            self.store.save()
        return sorted(waiting, key=lambda w: (str(w["data"].get("conversation_id")), int(w["data"].get("seq", 0))))

    def waiting_count(self) -> int:
        return sum(len(w) for w in self.store.waiting.values())
