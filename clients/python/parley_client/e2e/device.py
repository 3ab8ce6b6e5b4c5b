"""One device's Olm state and the rules of docs/security.md, without any network: what the
client sends (`keys.publish` data, `encrypted` envelopes, to-device bodies) and what it makes
of what it receives. `E2E` (manager.py) does the requests; tests drive two or three of these
in one process.
"""
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import vodozemac

from parley_client.e2e.primitives import (
    E2EError, b64decode, b64encode, device_keys_text, one_time_key_text, safety_number,
)
from parley_client.e2e.store import DevicePin, E2EStore, StoredMessage

ALGORITHM = "olm.v1"
PAYLOAD_VERSION = 1
MAX_BODY_CHARS = 22_000  # docs/security.md: each ciphertext's body
PRE_KEY, NORMAL = 0, 1


class DecryptionError(E2EError):
    """A message this device refuses to show. `reason`:

    - `tampered`: the ciphertext does not authenticate (changed on the way, or not Olm at all);
    - `replayed`: this very ciphertext (or payload) was already received as another message;
    - `not_for_this_device`: no ciphertext for this device (sent before it existed, say), and no
      copy was shared with it;
    - `unknown_sender`: the sending key is not a device the sender has published;
    - `bad_payload`: it decrypts, but the payload is not Parley's or contradicts the envelope.
    """

    def __init__(self, reason: str, detail: str, message_id: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.message_id = message_id


@dataclass(frozen=True)
class DeviceKeys:
    """A device as `keys.devices` lists it, its signature checked."""

    user_id: str
    device_id: str
    identity_key: str
    signing_key: str


@dataclass(frozen=True)
class KeyChange:
    """A pinned device whose keys changed: shown as "identity changed"."""

    user_id: str
    device_id: str
    old_signing_key: str
    new_signing_key: str
    old_identity_key: str
    new_identity_key: str


def _ed25519(key: str) -> vodozemac.Ed25519PublicKey:
    try:
        return vodozemac.Ed25519PublicKey.from_base64(key)
    except (vodozemac.KeyException, ValueError) as exc:
        raise E2EError(f"not an Ed25519 key: {key[:20]!r}") from exc


def _curve25519(key: str) -> vodozemac.Curve25519PublicKey:
    try:
        return vodozemac.Curve25519PublicKey.from_base64(key)
    except (vodozemac.KeyException, ValueError) as exc:
        raise E2EError(f"not a Curve25519 key: {key[:20]!r}") from exc


def verify_signature(signing_key: str, text: bytes, signature: str) -> bool:
    try:
        _ed25519(signing_key).verify_signature(text, vodozemac.Ed25519Signature.from_base64(signature))
    except (E2EError, vodozemac.SignatureException, ValueError):
        return False
    return True


class Device:
    """This device: its Olm account, its sessions, its pins and its decrypted messages (the store)."""

    def __init__(self, store: E2EStore, user_id: str, device_id: str):
        if store.user_id is not None and (store.user_id, store.device_id) != (user_id, device_id):
            raise E2EError(f"{store.path} belongs to {store.user_id}/{store.device_id}, not {user_id}/{device_id}")
        self.store = store
        self.user_id = user_id
        self.device_id = device_id
        key = store.pickle_key
        self.account = vodozemac.Account.from_pickle(store.account, key) if store.account else vodozemac.Account()
        self._sessions: dict[str, list[vodozemac.Session]] = {
            ik: [vodozemac.Session.from_pickle(p, key) for p in pickles] for ik, pickles in store.sessions.items()}
        if store.account is None:
            store.user_id, store.device_id = user_id, device_id
            self.save()

    # --- state ------------------------------------------------------------------------------------
    def save(self) -> None:
        key = self.store.pickle_key
        self.store.account = self.account.pickle(key)
        self.store.sessions = {ik: [s.pickle(key) for s in sessions] for ik, sessions in self._sessions.items()}
        self.store.save()

    @property
    def identity_key(self) -> str:
        return self.account.curve25519_key.to_base64()

    @property
    def signing_key(self) -> str:
        return self.account.ed25519_key.to_base64()

    def sign(self, text: bytes) -> str:
        return self.account.sign(text).to_base64()

    # --- publishing (keys.publish) ----------------------------------------------------------------
    def device_keys(self) -> dict[str, str]:
        text = device_keys_text(self.user_id, self.device_id, self.identity_key, self.signing_key)
        return {"identity_key": self.identity_key, "signing_key": self.signing_key, "signature": self.sign(text)}

    def keys_to_publish(self, one_time_keys: int, with_device_keys: bool, with_fallback: bool) -> dict[str, Any]:
        """`keys.publish` data: `one_time_keys` new one-time keys (plus any generated and not yet
        published), a fresh fallback key when asked; then `published()` once the server said ok."""
        account: Any = self.account  # fallback_key / generate_fallback_key are missing from the stubs
        wanted, unpublished = min(100, one_time_keys), len(self.account.one_time_keys)
        if wanted > unpublished:
            self.account.generate_one_time_keys(wanted - unpublished)
        data: dict[str, Any] = {}
        if with_device_keys:
            data["device_keys"] = self.device_keys()
        keys = sorted((key_id, key.to_base64()) for key_id, key in self.account.one_time_keys.items())[:100]
        if keys:
            data["one_time_keys"] = [
                {"key_id": key_id, "key": key,
                 "signature": self.sign(one_time_key_text(self.user_id, self.device_id, key_id, key))}
                for key_id, key in keys]
        if with_fallback:
            if not account.fallback_key:
                account.generate_fallback_key()
            ((key_id, public),) = cast(dict[str, vodozemac.Curve25519PublicKey], account.fallback_key).items()
            fallback = public.to_base64()
            data["fallback_key"] = {"key_id": key_id, "key": fallback, "signature": self.sign(
                one_time_key_text(self.user_id, self.device_id, key_id, fallback, fallback=True))}
        self.save()  # the generated keys' secrets, before the server hands their public halves out
        return data

    def published(self, data: Mapping[str, Any]) -> None:
        self.account.mark_keys_as_published()
        if "device_keys" in data:
            self.store.device_keys_published = True
        self.save()

    # --- trust: pins ------------------------------------------------------------------------------
    def check_devices(self, entries: Iterable[Mapping[str, Any]], user_ids: Iterable[str]
                      ) -> tuple[list[DeviceKeys], list[KeyChange]]:
        """`keys.devices`' entries, each signature checked (a bad one is left out), pinned on
        first use; the devices, and the pinned ones whose keys changed. A pinned device of one
        of `user_ids` that is no longer listed is marked removed."""
        devices: list[DeviceKeys] = []
        changes: list[KeyChange] = []
        listed: set[tuple[str, str]] = set()
        for entry in entries:
            user_id, device_id = str(entry["user_id"]), str(entry["device_id"])
            identity_key, signing_key = str(entry["identity_key"]), str(entry["signing_key"])
            if not verify_signature(signing_key, device_keys_text(user_id, device_id, identity_key, signing_key),
                                    str(entry.get("signature", ""))):
                continue  # the server checks too: a bad one here is a server that lies
            listed.add((user_id, device_id))
            if user_id == self.user_id and device_id == self.device_id:
                continue
            change = self.pin(user_id, device_id, identity_key, signing_key)
            if change is not None:
                changes.append(change)
            devices.append(DeviceKeys(user_id, device_id, identity_key, signing_key))
        for user_id in user_ids:
            for device_id, pin in self.store.pins.get(user_id, {}).items():
                if (user_id, device_id) not in listed and not pin["removed"]:
                    pin["removed"] = True
        self.store.save()
        return devices, changes

    def pin(self, user_id: str, device_id: str, identity_key: str, signing_key: str) -> KeyChange | None:
        pins = self.store.pins.setdefault(user_id, {})
        pin = pins.get(device_id)
        if pin is None:
            pins[device_id] = DevicePin(identity_key=identity_key, signing_key=signing_key, verified=False,
                                        identity_changed=False, previous_signing_keys=[], removed=False)
            return None
        pin["removed"] = False
        if pin["identity_key"] == identity_key and pin["signing_key"] == signing_key:
            return None
        change = KeyChange(user_id, device_id, pin["signing_key"], signing_key, pin["identity_key"], identity_key)
        pin["previous_signing_keys"].append(pin["signing_key"])
        pin["identity_key"], pin["signing_key"] = identity_key, signing_key
        pin["verified"], pin["identity_changed"] = False, True
        return change

    def devices_of(self, user_id: str) -> dict[str, DevicePin]:
        """The pinned devices of a user that are still there (for me: my other devices)."""
        return {d: p for d, p in self.store.pins.get(user_id, {}).items() if not p["removed"]}

    def device_by_identity(self, identity_key: str) -> tuple[str, str, DevicePin] | None:
        for user_id, devices in self.store.pins.items():
            for device_id, pin in devices.items():
                if pin["identity_key"] == identity_key:
                    return user_id, device_id, pin
        return None

    def signing_keys(self, user_id: str) -> list[str]:
        keys = [p["signing_key"] for p in self.devices_of(user_id).values()]
        if user_id == self.user_id:
            keys.append(self.signing_key)
        return keys

    def safety_number(self, peer_user_id: str) -> str:
        """docs/security.md's 60 digits between me and `peer_user_id`, from the keys pinned now."""
        return safety_number(self.user_id, self.signing_keys(self.user_id),
                             peer_user_id, self.signing_keys(peer_user_id))

    # --- Olm sessions -----------------------------------------------------------------------------
    def has_session(self, identity_key: str) -> bool:
        return bool(self._sessions.get(identity_key))

    def start_session(self, device: DeviceKeys, claimed: Mapping[str, Any]) -> None:
        """An outbound session from a `keys.claim` entry, its signature checked against the
        device's pinned signing key."""
        key_id, key = str(claimed["key_id"]), str(claimed["key"])
        text = one_time_key_text(device.user_id, device.device_id, key_id, key, bool(claimed.get("fallback")))
        if not verify_signature(device.signing_key, text, str(claimed.get("signature", ""))):
            raise E2EError(f"the one-time key claimed for {device.user_id}/{device.device_id} is not signed by it")
        session = self.account.create_outbound_session(_curve25519(device.identity_key), _curve25519(key))
        self._sessions.setdefault(device.identity_key, []).insert(0, session)
        self.save()

    def encrypt_to(self, identity_key: str, plaintext: bytes) -> tuple[int, str]:
        """(type, body) for the device with `identity_key` (a session must exist)."""
        sessions = self._sessions.get(identity_key)
        if not sessions:
            raise E2EError("no Olm session with that device: claim one of its keys first")
        kind, raw = sessions[0].encrypt(plaintext).to_parts()
        body = b64encode(raw)
        if len(body) > MAX_BODY_CHARS:
            raise E2EError(f"the encrypted message is {len(body)} characters; the server takes {MAX_BODY_CHARS}")
        return kind, body

    def decrypt_from(self, sender_key: str, kind: int, body: str) -> bytes:
        """The plaintext of one Olm message; `DecryptionError` (tampered) when no session (and,
        for a pre-key message, no new one) authenticates it."""
        if kind not in (PRE_KEY, NORMAL):
            raise DecryptionError("tampered", f"unknown Olm message type {kind!r}")
        try:
            message = vodozemac.AnyOlmMessage.from_parts(kind, b64decode(body))
        except (E2EError, ValueError) as exc:
            raise DecryptionError("tampered", "not an Olm message") from exc
        sessions = self._sessions.setdefault(sender_key, [])
        pre_key = message.to_pre_key() if kind == PRE_KEY else None
        for session in list(sessions):
            if pre_key is not None and not session.session_matches(pre_key):
                continue
            try:
                plaintext = session.decrypt(message)
            except (vodozemac.OlmDecryptionException, ValueError):
                if pre_key is not None:  # the session it was made for refuses it: replayed or changed
                    raise DecryptionError("tampered", "the message does not authenticate") from None
                continue
            sessions.remove(session)
            sessions.insert(0, session)
            self.save()
            return plaintext
        if pre_key is None:
            raise DecryptionError("tampered", "no Olm session with the sender authenticates the message")
        try:
            session, plaintext = self.account.create_inbound_session(_curve25519(sender_key), pre_key)
        except (vodozemac.SessionCreationException, vodozemac.KeyException, E2EError, ValueError) as exc:
            raise DecryptionError("tampered", f"the pre-key message does not start a session ({exc})") from exc
        sessions.insert(0, session)
        self.save()
        return plaintext

    # --- messages ---------------------------------------------------------------------------------
    def payload(self, conversation_id: str, kind: str, **fields: Any) -> dict[str, Any]:
        """A payload (docs/security.md "Payload"), its fields given (`None`s left out)."""
        return {"v": PAYLOAD_VERSION, "id": secrets.token_hex(16), "type": kind,
                "sender": {"user_id": self.user_id, "device_id": self.device_id},
                "conversation_id": conversation_id, **{k: v for k, v in fields.items() if v is not None}}

    def envelope(self, payload: Mapping[str, Any], devices: Iterable[DeviceKeys]) -> dict[str, Any]:
        """The `encrypted` envelope: one Olm ciphertext of the payload per device (sessions must exist)."""
        plaintext = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        ciphertexts = []
        for device in devices:
            kind, body = self.encrypt_to(device.identity_key, plaintext)
            ciphertexts.append({"user_id": device.user_id, "device_id": device.device_id, "type": kind, "body": body})
        self.save()
        return {"algorithm": ALGORITHM, "sender_key": self.identity_key, "ciphertexts": ciphertexts}

    def remember_sent(self, result: Mapping[str, Any], payload: dict[str, Any]) -> StoredMessage:
        """A message this device sent (it has no ciphertext for itself): kept to show it later."""
        record = StoredMessage(message_id=str(result["message_id"]), conversation_id=str(result["conversation_id"]),
                               seq=int(result["seq"]), from_user_id=self.user_id, sender_device_id=self.device_id,
                               sent_at=str(result["sent_at"]), payload=payload, source="sent")
        self.store.messages[record["message_id"]] = record
        self.store.seen_payloads[str(payload["id"])] = record["message_id"]
        self.store.save()
        return record

    def decrypt_message(self, message: Mapping[str, Any]) -> StoredMessage:
        """A message carrying `encrypted`, as this device can show it. Known already (sent by this
        device, decrypted before, or shared with it): the copy kept. Otherwise this device's
        ciphertext is decrypted (`DecryptionError` if it cannot be, or if it was already seen as
        another message). The sender device must be pinned (`unknown_sender` otherwise: the
        caller fetches `keys.devices` of the sender and tries again)."""
        message_id = str(message["message_id"])
        kept = self.store.messages.get(message_id)
        if kept is not None:
            return kept
        envelope = message.get("encrypted")
        if not isinstance(envelope, Mapping) or envelope.get("algorithm") != ALGORITHM:
            raise DecryptionError("bad_payload", "not an olm.v1 envelope", message_id)
        mine = [c for c in envelope.get("ciphertexts") or ()
                if isinstance(c, Mapping) and c.get("user_id") == self.user_id and c.get("device_id") == self.device_id]
        if not mine:
            raise DecryptionError("not_for_this_device", "the message has no ciphertext for this device "
                                  "(sent before it had keys?) and none of my devices shared it", message_id)
        sender_key = str(envelope.get("sender_key", ""))
        sender = self.device_by_identity(sender_key)
        from_user_id = str(message.get("from_user_id", ""))
        if sender is None or sender[0] != from_user_id or sender[2]["removed"]:
            raise DecryptionError("unknown_sender", f"{sender_key[:12]}… is not a device of {from_user_id}", message_id)
        payload = self._open(sender_key, mine[0], message_id)
        if "sender" in payload and payload["sender"] != {"user_id": from_user_id, "device_id": sender[1]}:
            raise DecryptionError("bad_payload", "the payload names another sender than the envelope", message_id)
        if "conversation_id" in payload and payload["conversation_id"] != message.get("conversation_id"):
            raise DecryptionError("bad_payload", "the payload belongs to another conversation", message_id)
        record = StoredMessage(message_id=message_id, conversation_id=str(message["conversation_id"]),
                               seq=int(message["seq"]), from_user_id=from_user_id, sender_device_id=sender[1],
                               sent_at=str(message["sent_at"]), payload=payload, source="decrypted")
        self.store.messages[message_id] = record
        if "id" in payload:
            self.store.seen_payloads[str(payload["id"])] = message_id
        self.store.save()
        return record

    def _open(self, sender_key: str, ciphertext: Mapping[str, Any], message_id: str) -> dict[str, Any]:
        body = str(ciphertext.get("body", ""))
        digest = hashlib.sha256(body.encode()).hexdigest()[:32]
        earlier = self.store.seen_ciphertexts.get(digest)
        if earlier is not None and earlier != message_id:
            raise DecryptionError("replayed", f"this ciphertext was already received as message {earlier}", message_id)
        try:
            kind = int(ciphertext.get("type", -1))
        except (TypeError, ValueError):
            kind = -1
        try:
            plaintext = self.decrypt_from(sender_key, kind, body)
        except DecryptionError as exc:
            exc.message_id = message_id
            raise
        self.store.seen_ciphertexts[digest] = message_id
        try:
            payload = json.loads(plaintext)
        except ValueError:
            payload = None
        # `type` is all a payload must have (the web client's carry no `v`, `id`, `sender` or
        # `conversation_id`); each of those is checked when it is there.
        if (not isinstance(payload, dict) or not isinstance(payload.get("type"), str)
                or payload.get("v", PAYLOAD_VERSION) != PAYLOAD_VERSION):
            raise DecryptionError("bad_payload", "the plaintext is not a Parley payload", message_id)
        earlier = self.store.seen_payloads.get(str(payload["id"])) if "id" in payload else None
        if earlier is not None and earlier != message_id:
            raise DecryptionError("replayed", f"this payload was already received as message {earlier}", message_id)
        return payload

    # --- to-device messages (devices.send / device.message) ---------------------------------------
    def to_device(self, device: DeviceKeys, payload: Mapping[str, Any]) -> dict[str, Any]:
        """One `devices.send` entry for a device (`user_id` named when it is another user's)."""
        plaintext = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        kind, body = self.encrypt_to(device.identity_key, plaintext)
        self.save()
        entry: dict[str, Any] = {"device_id": device.device_id, "sender_key": self.identity_key, "type": kind,
                                 "body": body}
        if device.user_id != self.user_id:
            entry["user_id"] = device.user_id
        return entry

    def to_device_sender(self, push: Mapping[str, Any], others: bool = False) -> tuple[str, str]:
        """(user_id, device_id) of a `device.message`'s sender: a pinned device of mine (or, with
        `others`, of anyone), whose id is the push's `from_device_id` (and `from_user_id` when
        the server names it); `DecryptionError` (`unknown_sender`) otherwise."""
        sender = self.device_by_identity(str(push.get("sender_key", "")))
        if (sender is None or sender[2]["removed"] or sender[1] != push.get("from_device_id")
                or (sender[0] != self.user_id and not others)
                or push.get("from_user_id", sender[0]) != sender[0]):
            raise DecryptionError("unknown_sender", "a to-device message not from a device "
                                  + ("pinned" if others else "of mine"))
        return sender[0], sender[1]

    def open_to_device(self, push: Mapping[str, Any], others: bool = False) -> dict[str, Any]:
        """The payload of a `device.message` from another device of mine (with `others`: from any
        pinned device; the caller checks what the payload may be from whom); `DecryptionError` otherwise."""
        sender_key = str(push.get("sender_key", ""))
        user_id, device_id = self.to_device_sender(push, others)
        ident = f"device.message:{push.get('id')}"
        payload = self._open(sender_key, push, ident)
        if "sender" in payload and payload["sender"] != {"user_id": user_id, "device_id": device_id}:
            raise DecryptionError("bad_payload", "the payload names another sender than the envelope")
        if "id" in payload:
            self.store.seen_payloads[str(payload["id"])] = ident
        self.store.save()
        return payload

    def import_shared(self, items: Iterable[Mapping[str, Any]]) -> int:
        """Messages another device of mine shared (history `items`: `{conversation_id, message_id,
        payload}` and, from this client, the other fields of a StoredMessage): kept unless
        already here; how many were new."""
        added = 0
        for item in items:
            if not isinstance(item, Mapping) or not isinstance(item.get("payload"), Mapping) or "message_id" not in item:
                continue
            message_id = str(item["message_id"])
            if message_id in self.store.messages or not isinstance(item["payload"].get("type"), str):
                continue
            sender = item["payload"].get("sender") or {}
            record = StoredMessage(
                message_id=message_id, conversation_id=str(item.get("conversation_id", "")),
                seq=int(item.get("seq", 0)), from_user_id=str(item.get("from_user_id", sender.get("user_id", ""))),
                sender_device_id=str(item.get("sender_device_id", sender.get("device_id", ""))),
                sent_at=str(item.get("sent_at", "")), payload=dict(item["payload"]), source="shared")
            self.store.messages[message_id] = record
            added += 1
        self.store.save()
        return added
