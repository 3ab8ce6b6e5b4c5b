"""`client.e2e`: end-to-end encrypted direct conversations over the socket (docs/security.md).

    await client.login("alice", "...", device_id="laptop")
    await client.e2e.enable("alice-laptop.e2e")          # keys made, published, topped up
    await client.e2e.encrypt_conversation(bob_id)        # once, for good
    await client.send({"user_id": bob_id}, "hello")      # encrypted: the conversation is
    async for message in client.messages(): ...          # decrypted: text, file, e2e fields

Once enabled, every push goes through here in arrival order before the library's queue and
hooks see it: `message.new` / `message.edited` carrying `encrypted` come out decrypted (or, when
they cannot be, as a push `e2e.error` instead: never as a message), `device.message` is
decrypted (history another device of mine shared is imported and acknowledged), `keys.low` tops
the one-time keys up, `keys.changed` refreshes the pins (a changed key is pushed as
`e2e.identity_changed`).
"""
import asyncio
import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from parley_client.connection import dumps
from parley_client.e2e.device import DecryptionError, Device, DeviceKeys, KeyChange
from parley_client.e2e.group import ALGORITHM as MEGOLM, Megolm, WaitingForKey
from parley_client.e2e.primitives import E2EError, FileSecret, decrypt_file, encrypt_file, parse_safety_qr
from parley_client.e2e.store import E2EStore, StoredMessage
from parley_client.errors import ParleyError, ReplyError
from parley_client.models import Message, Push, Recipient, SendResult

if TYPE_CHECKING:
    from parley_client.client import ParleyClient

log = logging.getLogger("parley_client.e2e")
ONE_TIME_KEYS = 50  # kept on the server (refilled on keys.low, below 20)
HISTORY_CHUNK_BYTES = 8_000  # plaintext per to-device message: its body stays well under 22,000 characters
PASSED = frozenset({"message.new", "message.changed", "message.edited", "device.message", "keys.low",
                    "keys.changed", "conversation.encrypted", "group.member_joined", "group.member_left",
                    "group.added", "group.removed"})
TO_DEVICE_ENTRIES = 64  # devices.send: entries a request
TO_DEVICE_BYTES = 48_000  # and their JSON, well under the 64 KiB frame


class E2E:
    """One device's end-to-end encryption, attached to its client (`client.e2e`)."""

    def __init__(self, client: "ParleyClient"):
        self.client = client
        self.device: Device | None = None
        self.errors: list[DecryptionError] = []  # messages refused (also pushed as `e2e.error`)
        self.identity_changes: list[KeyChange] = []  # also pushed as `e2e.identity_changed`
        self._store_path: Path | None = None
        self._pickle_key: bytes | None = None
        self._queue: asyncio.Queue[Push] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._setup_task: asyncio.Task[None] | None = None
        self.setup_error: BaseException | None = None  # why setting up at the last bind failed (tried again at the next)
        self._lock = asyncio.Lock()  # one envelope at a time: sessions are claimed once
        self._fresh: dict[str, list[DeviceKeys]] = {}  # user_id -> devices fetched since the last change
        self._members: dict[str, list[str]] = {}  # group_id -> member user_ids, fetched since the last change
        self._in_flight: dict[str, list[int]] = {}  # conversation_id -> seqs of message pushes not handled yet
        self.megolm: Megolm | None = None

    # --- setting up -------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._store_path is not None

    async def enable(self, store_path: str | os.PathLike[str], pickle_key: bytes | None = None) -> None:
        """Turn end-to-end encryption on for this device: its state in `store_path` (made if
        missing; sealed with `pickle_key`, 32 bytes, or a key kept in `<store_path>.key`).
        Before login: done at the bind, before any push of it is handed on. After: at once."""
        self._store_path, self._pickle_key = Path(store_path), pickle_key
        self._start_worker()
        if self.client.user_id is not None and self.client.token is not None:
            await self._setup()
        else:
            self._ready.clear()

    def on_bound(self) -> None:
        """Called by the client after each bind."""
        if not self.active:
            return
        self._start_worker()
        if (self.device is None or not self._ready.is_set()) and (self._setup_task is None or self._setup_task.done()):
            self._setup_task = asyncio.create_task(self._setup_quietly())
            self.client._tasks.append(self._setup_task)

    def _start_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work())
            self.client._tasks.append(self._worker)

    async def _setup_quietly(self) -> None:
        try:
            await self._setup()
            self.setup_error = None
        except Exception as exc:  # pushes wait (they are never handed on undecrypted) until a bind sets it up
            self.setup_error = exc
            log.exception("end-to-end setup failed")

    async def _setup(self) -> None:
        if self.device is None:
            assert self._store_path is not None
            user_id, device_id = self.client.user_id, self.client.device_id or "default"
            if user_id is None:
                raise ParleyError("log in first")
            store = E2EStore(self._store_path, self._pickle_key)
            self.device = Device(store, user_id, device_id)
            self.megolm = Megolm(self.device)
        device = self.device
        mine, _ = await self.refresh_devices([device.user_id])
        listed = await self.client.call("keys.devices", {"user_ids": [device.user_id]})
        on_server = [d for d in listed.get("devices", []) if d["device_id"] == device.device_id]
        current = bool(on_server) and on_server[0]["identity_key"] == device.identity_key
        await self.publish(with_device_keys=not current, with_fallback=not current)
        for conversation in (await self.client.call("conversations.list")).get("conversations", []):
            self._note_listed(conversation)
        device.store.save()
        self._ready.set()

    def _note_listed(self, conversation: Mapping[str, Any]) -> None:
        """A `conversations.list` entry: remembered if it is encrypted."""
        store = self._device().store
        if not conversation.get("encrypted_at"):
            return
        if conversation.get("kind") == "direct" and conversation.get("peer"):
            store.encrypted_conversations[conversation["peer"]["user_id"]] = str(conversation["conversation_id"])
        elif conversation.get("kind") == "group" and conversation.get("group"):
            store.encrypted_groups[conversation["group"]["group_id"]] = str(conversation["conversation_id"])

    def _megolm(self) -> Megolm:
        if self.megolm is None:
            self.megolm = Megolm(self._device())
        return self.megolm

    def _device(self) -> Device:
        if self.device is None:
            raise ParleyError("end-to-end encryption is not enabled (await client.e2e.enable(...)) or not set up yet")
        return self.device

    async def publish(self, with_device_keys: bool = False, with_fallback: bool = False) -> int:
        """`keys.publish`: the device keys and a fallback key when asked, the one-time keys made
        and not published yet; then one-time keys up to ONE_TIME_KEYS on the server. The
        server's count of this device's unclaimed one-time keys."""
        device = self._device()
        data = device.keys_to_publish(0, with_device_keys, with_fallback)
        count = int((await self.client.call("keys.publish", data))["one_time_key_count"])
        device.published(data)
        if count < ONE_TIME_KEYS:
            more = device.keys_to_publish(ONE_TIME_KEYS - count, False, False)
            count = int((await self.client.call("keys.publish", more))["one_time_key_count"])
            device.published(more)
        return count

    # --- devices and trust ------------------------------------------------------------------------
    async def refresh_devices(self, user_ids: Iterable[str]) -> tuple[list[DeviceKeys], list[KeyChange]]:
        """`keys.devices` of these users, checked and compared with the pins; a changed key is
        pushed as `e2e.identity_changed` and kept in `identity_changes`."""
        device = self._device()
        users = sorted(set(user_ids))
        listed = await self.client.call("keys.devices", {"user_ids": users})
        devices, changes = device.check_devices(listed.get("devices", []), users)
        for user_id in users:
            self._fresh[user_id] = [d for d in devices if d.user_id == user_id]
        for change in changes:
            self.identity_changes.append(change)
            self.client._deliver_now({"type": "e2e.identity_changed", "data": {
                "user_id": change.user_id, "device_id": change.device_id,
                "old_signing_key": change.old_signing_key, "new_signing_key": change.new_signing_key}})
        return devices, changes

    async def devices(self, user_ids: Iterable[str]) -> list[DeviceKeys]:
        """The users' devices (but this one): as fetched since the last `keys.changed`, else fetched."""
        users = set(user_ids)
        missing = sorted(u for u in users if u not in self._fresh)
        for start in range(0, len(missing), 100):  # keys.devices takes 100 users a call
            await self.refresh_devices(missing[start:start + 100])
        return [d for u in sorted(users) for d in self._fresh.get(u, [])]

    def identity_changed(self, user_id: str) -> bool:
        """A device of the user changed its keys since they were pinned (and nobody verified the new ones)."""
        return any(p["identity_changed"] for p in self._device().devices_of(user_id).values())

    async def safety_number(self, peer_user_id: str) -> str:
        """The 60 digits to compare with `peer_user_id` (keys refreshed first)."""
        device = self._device()
        await self.refresh_devices([device.user_id, peer_user_id])
        return device.safety_number(peer_user_id)

    async def verify(self, peer_user_id: str, safety_number_or_qr: str) -> bool:
        """Compare what the other person shows (60 digits, spaces allowed, or the scanned QR
        string) with ours; when equal, their devices are marked verified (and the changed-key
        notice cleared)."""
        text = safety_number_or_qr.strip()
        digits = parse_safety_qr(text) if text.startswith("parley-sn:") else text.replace(" ", "")
        if digits != await self.safety_number(peer_user_id):
            return False
        for pin in self._device().devices_of(peer_user_id).values():
            pin["verified"], pin["identity_changed"] = True, False
        self._device().store.save()
        return True

    def mark_verified(self, user_id: str, device_id: str, verified: bool = True) -> None:
        pin = self._device().store.pins[user_id][device_id]
        pin["verified"] = verified
        if verified:
            pin["identity_changed"] = False
        self._device().store.save()

    def acknowledge_identity(self, user_id: str) -> None:
        """The person saw the "identity changed" notice: stop marking their messages."""
        for pin in self._device().devices_of(user_id).values():
            pin["identity_changed"] = False
        self._device().store.save()

    # --- conversations ----------------------------------------------------------------------------
    async def encrypt_conversation(self, user_id: str | None = None, *, group_id: str | None = None) -> str:
        """`conversations.encrypt` with `user_id`, or of the group `group_id` (its owner or an
        admin), for good; the conversation's id."""
        if (user_id is None) == (group_id is None):
            raise ParleyError("encrypt_conversation: a user_id or a group_id")
        to = {"user_id": user_id} if user_id is not None else {"group_id": group_id}
        result = await self.client.call("conversations.encrypt", {"to": to})
        store = self._device().store
        if user_id is not None:
            store.encrypted_conversations[user_id] = str(result["conversation_id"])
        else:
            assert group_id is not None
            store.encrypted_groups[group_id] = str(result["conversation_id"])
        store.save()
        return str(result["conversation_id"])

    def is_encrypted(self, user_id: str) -> bool:
        return self.device is not None and user_id in self.device.store.encrypted_conversations

    def is_group_encrypted(self, group_id: str) -> bool:
        return self.device is not None and group_id in self.device.store.encrypted_groups

    # --- groups: members and room keys ------------------------------------------------------------
    async def members(self, group_id: str) -> list[str]:
        """The group's members (`groups.members`), as fetched since the last membership push."""
        if group_id not in self._members:
            listed = await self.client.call("groups.members", {"group_id": group_id})
            self._members[group_id] = sorted(str(m["user_id"]) for m in listed.get("members", []))
        return self._members[group_id]

    def _group_of(self, conversation_id: str) -> str | None:
        return next((g for g, c in self._device().store.encrypted_groups.items() if c == conversation_id), None)

    async def _megolm_envelope(self, group_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The `megolm.v1` envelope of the payload; a new session first (shared over Olm with
        every other device of every member) when one is due. Call under `_lock`."""
        device, megolm = self._device(), self._megolm()
        conversation_id = device.store.encrypted_groups[group_id]
        members = await self.members(group_id)
        if device.user_id not in members:
            raise E2EError(f"not a member of {group_id}")
        devices = await self.devices(members)
        if megolm.needs_rotation(conversation_id, devices):
            room_key = megolm.rotate(conversation_id, devices)
            try:
                await self._share(devices, room_key)
            except BaseException:
                megolm.mark_stale(conversation_id)  # some devices may lack the key: a new one next time
                raise
        return megolm.encrypt(conversation_id, payload)

    async def _claim_sessions(self, devices: list[DeviceKeys]) -> None:
        """An Olm session with each device that has none yet, from a one-time (or fallback) key
        claimed in `keys.claim` requests of at most 100 devices; a device with no key left gets none."""
        device = self._device()
        missing = [d for d in devices if not device.has_session(d.identity_key)]
        for start in range(0, len(missing), 100):
            part = missing[start:start + 100]
            claimed = await self.client.call("keys.claim", {"devices": [
                {"user_id": d.user_id, "device_id": d.device_id} for d in part]})
            by_device = {(k["user_id"], k["device_id"]): k for k in claimed.get("keys", [])}
            for d in part:
                key = by_device.get((d.user_id, d.device_id))
                if key is not None:
                    device.start_session(d, key)

    async def _share(self, devices: list[DeviceKeys], payload: Mapping[str, Any]) -> int:
        """An Olm to-device message of `payload` to each device (sessions claimed where missing),
        in `devices.send` requests of at most 64 entries and TO_DEVICE_BYTES; how many went."""
        device = self._device()
        await self._claim_sessions(devices)
        batch: list[dict[str, Any]] = []
        size = sent = 0
        for target in devices:
            if not device.has_session(target.identity_key):
                log.warning("%s/%s has no key left to claim: it gets no room key", target.user_id, target.device_id)
                continue
            entry = device.to_device(target, payload)
            length = len(dumps(entry).encode())
            if batch and (len(batch) >= TO_DEVICE_ENTRIES or size + length > TO_DEVICE_BYTES):
                await self.client.call("devices.send", {"messages": batch})
                batch, size = [], 0
            batch.append(entry)
            size += length
            sent += 1
        if batch:
            await self.client.call("devices.send", {"messages": batch})
        return sent

    async def _envelope(self, payload: Mapping[str, Any], user_ids: Iterable[str]) -> dict[str, Any]:
        device = self._device()
        devices = await self.devices(user_ids)
        await self._claim_sessions(devices)
        reachable = [d for d in devices if device.has_session(d.identity_key)]
        users = set(user_ids) - {device.user_id}
        if users and not users & {d.user_id for d in reachable}:
            raise E2EError(f"{', '.join(sorted(users))}: no device with published keys to encrypt to")
        return device.envelope(payload, reachable)

    async def send(self, to: str | Recipient, text: str | None = None, *, file: dict[str, Any] | None = None,
                   file_id: str | None = None, sticker_id: str | None = None,
                   voice: dict[str, Any] | None = None, mentions: list[str] | None = None,
                   reply_to: str | None = None, ttl_seconds: int | None = None, burn_seconds: int | None = None,
                   client_msg_id: str | None = None) -> SendResult:
        """`message.send` in the encrypted conversation with `to` (a user_id, or `{"user_id"}` /
        `{"group_id"}`): in a direct conversation the payload encrypted with Olm to every device of
        both users (this one excepted); in a group with this device's Megolm session (rotated and
        shared first when due). Kept here to be shown later."""
        device = self._device()
        recipient: Recipient = {"user_id": to} if isinstance(to, str) else to
        user_id, group_id = recipient.get("user_id"), recipient.get("group_id")
        if group_id is not None:
            conversation_id = device.store.encrypted_groups.get(group_id)
        else:
            assert user_id is not None
            conversation_id = device.store.encrypted_conversations.get(user_id)
        if conversation_id is None:
            raise E2EError(f"the conversation with {group_id or user_id} is not encrypted (encrypt_conversation first)")
        if file_id is not None and file is None:
            raise E2EError("a file in an encrypted conversation is sent with send_file (encrypted first)")
        kind = "voice" if voice else "file" if file else "sticker" if sticker_id else "text"
        payload = device.payload(conversation_id, kind, text=text, file=file, sticker_id=sticker_id, voice=voice,
                                 mentions=mentions)
        cmid = client_msg_id or secrets.token_hex(8)
        for attempt in range(2):
            async with self._lock:
                if group_id is not None:
                    envelope = await self._megolm_envelope(group_id, payload)
                else:
                    assert user_id is not None
                    envelope = await self._envelope(payload, [user_id, device.user_id])
            data: dict[str, Any] = {"to": dict(recipient), "client_msg_id": cmid, "encrypted": envelope}
            for key, value in (("file_id", file_id), ("reply_to", reply_to), ("ttl_seconds", ttl_seconds),
                               ("burn_seconds", burn_seconds)):
                if value is not None:
                    data[key] = value
            self.client.outbox[cmid] = data
            try:
                result = cast(SendResult, await self.client.call("message.send", data, retry=self.client.send_policy))
            except ReplyError as exc:  # the device list changed under us: fetch it again, once
                if attempt or exc.code != "bad_request" or "encrypted" not in exc.message:
                    raise
                self._fresh.clear()
                if group_id is not None:
                    self._members.pop(group_id, None)
                    self._megolm().mark_stale(conversation_id)
                continue
            finally:
                self.client.outbox.pop(cmid, None)
            device.remember_sent(result, payload)
            return result
        raise AssertionError("unreachable")

    async def send_file(self, to: str | Recipient, content: bytes, name: str, content_type: str = "application/octet-stream",
                        *, voice_ms: int | None = None, text: str | None = None, **options: Any) -> SendResult:
        """Encrypt `content` (AES-256-GCM), upload the ciphertext (`application/octet-stream`
        named `encrypted`), send the key, name, type and size inside the encrypted message."""
        ciphertext, secret = encrypt_file(content)
        uploaded = await self.client.upload(ciphertext, "encrypted", "application/octet-stream")
        file = {"file_id": uploaded["file_id"], "key": secret.key, "nonce": secret.nonce, "sha256": secret.sha256,
                "name": name, "content_type": content_type, "size": len(content)}
        voice = {"duration_ms": voice_ms} if voice_ms is not None else None
        return await self.send(to, text, file=file, file_id=uploaded["file_id"], voice=voice, **options)

    async def download_file(self, message: Mapping[str, Any]) -> bytes:
        """The decrypted bytes of a decrypted message's file (its SHA-256 and tag checked)."""
        secret = (message.get("e2e") or {}).get("file")
        if not secret:
            raise E2EError("this message carries no encrypted file")
        ciphertext = await self.client.download(secret["file_id"])
        return decrypt_file(ciphertext, FileSecret(secret["key"], secret["nonce"], secret["sha256"]))

    async def edit(self, message_id: str, text: str) -> dict[str, Any]:
        """`message.edit` of one of my messages with a new encrypted payload."""
        device = self._device()
        record = device.store.messages.get(message_id)
        if record is None:
            raise E2EError("an unknown message (edits are of messages this device holds)")
        peer = next((u for u, c in device.store.encrypted_conversations.items() if c == record["conversation_id"]),
                    None)
        group_id = self._group_of(record["conversation_id"])
        if peer is None and group_id is None:
            raise E2EError("not a message of an encrypted conversation")
        payload = device.payload(record["conversation_id"], "text", text=text, edit_of=message_id)
        async with self._lock:
            if group_id is not None:
                envelope = await self._megolm_envelope(group_id, payload)
            else:
                assert peer is not None
                envelope = await self._envelope(payload, [peer, device.user_id])
        result = await self.client.call("message.edit", {"message_id": message_id, "encrypted": envelope})
        record["payload"] = {**record["payload"], "text": text}
        ident = f"{message_id}@{result.get('edited_at')}"
        device.store.messages[ident] = StoredMessage(
            message_id=ident, conversation_id=record["conversation_id"], seq=record["seq"],
            from_user_id=device.user_id, sender_device_id=device.device_id, sent_at=str(result.get("edited_at")),
            payload=payload, source="edit")
        device.store.seen_payloads[payload["id"]] = ident
        device.store.save()
        return result

    # --- receiving --------------------------------------------------------------------------------
    async def decrypt(self, message: Mapping[str, Any]) -> Message:
        """A message as pushed or fetched, decrypted (unchanged when it is not encrypted);
        `DecryptionError` for one this device cannot or must not show."""
        if "encrypted" not in message:
            return cast(Message, dict(message))
        device = self._device()
        envelope = message.get("encrypted")
        if isinstance(envelope, Mapping) and envelope.get("algorithm") == MEGOLM:
            if "group_id" not in (message.get("to") or {"group_id": None}):
                raise DecryptionError("bad_payload", "a megolm.v1 envelope outside a group",
                                      str(message.get("message_id")))
            try:
                return self.shown(message, self._megolm().decrypt_message(message))
            except DecryptionError as exc:
                if exc.reason != "unknown_sender":
                    raise
                await self.refresh_devices([str(message.get("from_user_id"))])
                return self.shown(message, self._megolm().decrypt_message(message))
        try:
            record = device.decrypt_message(message)
        except DecryptionError as exc:
            if exc.reason != "unknown_sender":
                raise
            await self.refresh_devices([str(message.get("from_user_id"))])
            record = device.decrypt_message(message)
        to = message.get("to") or {}
        if "user_id" in to:
            peer = to["user_id"] if message.get("from_user_id") == device.user_id else message.get("from_user_id")
            if peer and peer not in device.store.encrypted_conversations:
                device.store.encrypted_conversations[str(peer)] = str(message["conversation_id"])
                device.store.save()
        return self.shown(message, record)

    def shown(self, message: Mapping[str, Any], record: StoredMessage) -> Message:
        """The message with its payload's fields where a plaintext message has them, and `e2e`."""
        device = self._device()
        data = {k: v for k, v in message.items() if k != "encrypted"}
        payload = record["payload"]
        for key in ("text", "mentions", "voice"):
            if key in payload:
                data[key] = payload[key]
        if isinstance(payload.get("sticker_id"), str):
            sticker_id = payload["sticker_id"]
            url = (f"/app/stickers/{sticker_id.removeprefix('builtin:')}.svg" if sticker_id.startswith("builtin:")
                   else f"/images/{sticker_id}")
            data["sticker"] = {"sticker_id": sticker_id, "url": url}
        pin = device.store.pins.get(record["from_user_id"], {}).get(record["sender_device_id"])
        e2e: dict[str, Any] = {"sender_device_id": record["sender_device_id"], "source": record["source"],
                               "verified": bool(pin and pin["verified"]),
                               "identity_changed": bool(pin and pin["identity_changed"])}
        file = payload.get("file")
        server_file = message.get("file") or {}
        if isinstance(file, dict):  # the file_id is the payload's (this client's) or the message's (the web's)
            file_id = file.get("file_id") or server_file.get("file_id")
            data["file"] = {"file_id": file_id, "name": str(file.get("name") or "file"), "size": file.get("size"),
                            "content_type": str(file.get("content_type") or "application/octet-stream")}
            e2e["file"] = {"file_id": file_id, **{k: file[k] for k in ("key", "nonce", "sha256")}}
        elif server_file:
            data.pop("file", None)  # an upload the payload does not name: nothing this device can read
        data["e2e"] = e2e
        reply_to = data.get("reply_to")
        if isinstance(reply_to, dict) and "message_id" in reply_to:  # the quote, from this device's own copy
            quoted = device.store.messages.get(str(reply_to["message_id"]))
            if quoted is not None:
                quoted_payload = quoted["payload"]
                data["reply_to"] = {**reply_to, **{k: v for k, v in (
                    ("text", quoted_payload.get("text")), ("file_name", (quoted_payload.get("file") or {}).get("name")),
                    ("voice", True if quoted_payload.get("voice") else None)) if v is not None}}
        return cast(Message, data)

    async def history(self, conversation_id: str, before_seq: int | None = None, limit: int = 50) -> list[Message]:
        """A `history.fetch` page, decrypted; what cannot be is left out (and kept in `errors`)."""
        page = await self.client.history(conversation_id, before_seq, limit)
        return await self._decrypt_all(page["messages"])

    async def history_all(self, conversation_id: str) -> list[Message]:
        return await self._decrypt_all(await self.client.history_all(conversation_id))

    async def _decrypt_all(self, messages: Iterable[Mapping[str, Any]]) -> list[Message]:
        shown = []
        for message in messages:
            try:
                shown.append(await self.decrypt(message))
            except DecryptionError as exc:
                self.errors.append(exc)
        return shown

    def local_messages(self, conversation_id: str | None = None) -> list[StoredMessage]:
        """What this device holds decrypted (sent, received or shared with it), by seq."""
        records = [r for r in self._device().store.messages.values() if r["source"] != "edit"]
        return sorted((r for r in records if conversation_id is None or r["conversation_id"] == conversation_id),
                      key=lambda r: (r["conversation_id"], r["seq"]))

    # --- history for a new device of mine ---------------------------------------------------------
    async def share_history(self, to_device_id: str, conversation_id: str | None = None) -> int:
        """Send what this device holds decrypted to another device of mine (`devices.send`,
        Olm to-device, in chunks under the frame limit); how many messages went."""
        device = self._device()
        await self.refresh_devices([device.user_id])
        target = next((d for d in self._fresh.get(device.user_id, []) if d.device_id == to_device_id), None)
        if target is None:
            raise E2EError(f"{to_device_id} is not a device of mine with published keys")
        records = self.local_messages(conversation_id)
        chunks: list[list[StoredMessage]] = [[]]
        size = 0
        for record in records:
            length = len(dumps(record).encode())
            if chunks[-1] and size + length > HISTORY_CHUNK_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(record)
            size += length
        batch = secrets.token_hex(8)
        async with self._lock:
            if not device.has_session(target.identity_key):
                claimed = await self.client.call("keys.claim", {"devices": [
                    {"user_id": device.user_id, "device_id": to_device_id}]})
                if not claimed.get("keys"):
                    raise E2EError(f"{to_device_id} has no one-time or fallback key left to claim")
                device.start_session(target, claimed["keys"][0])
            for part, chunk in enumerate(chunks):
                payload = device.payload("", "history", batch=batch, part=part, parts=len(chunks), items=chunk)
                payload.pop("conversation_id")
                await self.client.call("devices.send", {"messages": [device.to_device(target, payload)]})
        return len(records)

    # --- the pushes' pipeline ---------------------------------------------------------------------
    def feed(self, push: Push) -> None:
        """Take a push (in arrival order) to be handled before it is handed on."""
        data = push.get("data") or {}
        if push.get("type") == "message.new" and "encrypted" in data:
            self._in_flight.setdefault(str(data["conversation_id"]), []).append(int(data["seq"]))
        self._queue.put_nowait(push)

    def ack_ceiling(self, conversation_id: str) -> int | None:
        """The highest seq of the conversation that may be acknowledged now: below the first
        encrypted message not handled yet (not yet decrypted, nor kept in the store as waiting
        for its key); `None`: no limit."""
        seqs = self._in_flight.get(conversation_id)
        return min(seqs) - 1 if seqs else None

    def _handled(self, push: Push) -> None:
        data = push.get("data") or {}
        if push.get("type") == "message.new" and "encrypted" in data:
            seqs = self._in_flight.get(str(data["conversation_id"]), [])
            if int(data["seq"]) in seqs:
                seqs.remove(int(data["seq"]))

    async def _work(self) -> None:
        while True:
            push = await self._queue.get()
            try:
                if push.get("type") in PASSED:
                    await self._ready.wait()
                    handled = await self._handle(push)
                else:
                    handled = push
            except Exception:
                log.exception("end-to-end handling of a %s push failed", push.get("type"))
                handled = push
            finally:
                self._handled(push)
            if handled is not None:
                self.client._deliver_now(handled)

    async def _handle(self, push: Push) -> Push | None:
        kind, data = push["type"], push.get("data") or {}
        if kind in ("message.new", "message.changed", "message.edited") and "encrypted" in data:
            try:
                if kind == "message.edited":
                    return {"type": kind, "data": await self._decrypt_edit(data)}
                store = self._device().store
                if kind == "message.changed" and data.get("edited_at") and data["message_id"] in store.messages:
                    await self._decrypt_edit(data)  # a changed message I hold: its edit, if new
                    return {"type": kind, "data": dict(self.shown(data, store.messages[data["message_id"]]))}
                return {"type": kind, "data": dict(await self.decrypt(data))}
            except WaitingForKey as exc:  # kept (sealed store) and opened when the room key comes
                for dropped in self._megolm().keep_waiting(exc.session_id, kind, data):
                    log.warning("e2e: message %s waited too long for its room key: no longer kept", dropped)
                return {"type": "e2e.waiting", "data": {
                    "event": kind, "message_id": data.get("message_id"), "conversation_id": data.get("conversation_id"),
                    "seq": data.get("seq"), "from_user_id": data.get("from_user_id"), "session_id": exc.session_id}}
            except DecryptionError as exc:
                return self._refused(kind, data, exc)
        if kind == "device.message":
            return await self._device_message(data)
        if kind in ("group.member_joined", "group.member_left", "group.added", "group.removed"):
            await self._membership(kind, data)
        elif kind == "keys.low":
            await self.publish()
        elif kind == "keys.changed":
            user_id = str(data.get("user_id"))
            self._fresh.pop(user_id, None)
            await self.refresh_devices([user_id])
            for group_id, members in self._members.items():  # a device came or went: new sessions
                if user_id in members and group_id in self._device().store.encrypted_groups:
                    self._megolm().mark_stale(self._device().store.encrypted_groups[group_id])
        elif kind == "conversation.encrypted":
            await self._note_encrypted(data)
        return push

    def _refused(self, kind: str, data: Mapping[str, Any], exc: DecryptionError) -> Push:
        self.errors.append(exc)
        return {"type": "e2e.error", "data": {
            "event": kind, "message_id": data.get("message_id"), "conversation_id": data.get("conversation_id"),
            "seq": data.get("seq"), "from_user_id": data.get("from_user_id"), "reason": exc.reason,
            "detail": exc.detail}}

    async def _membership(self, kind: str, data: Mapping[str, Any]) -> None:
        """A group's members changed: fetched again, and the next message starts a new session."""
        group_id = str(data.get("group_id"))
        self._members.pop(group_id, None)
        store = self._device().store
        conversation_id = store.encrypted_groups.get(group_id)
        if kind == "group.added":  # is the group I joined encrypted?
            await self._note_encrypted({"conversation_id": data.get("conversation_id")})
        elif kind == "group.removed":  # I am out: no more sending; what I read stays readable
            store.encrypted_groups.pop(group_id, None)
            if conversation_id is not None:
                store.outbound.pop(conversation_id, None)
            store.save()
        elif conversation_id is not None:
            self._megolm().mark_stale(conversation_id)

    async def _room_key(self, sender_key: str, payload: Mapping[str, Any]) -> list[Push]:
        """A room key from another device: kept when its sender is a member of the group named,
        then the messages that waited for it opened (pushed as they would have been, by seq)."""
        megolm = self._megolm()
        conversation_id = str(payload.get("conversation_id"))
        group_id = self._group_of(conversation_id)
        if group_id is None:  # its conversation.encrypted push may not be handled yet
            for conversation in (await self.client.call("conversations.list")).get("conversations", []):
                self._note_listed(conversation)
            group_id = self._group_of(conversation_id)
        members: list[str] | None = None
        if group_id is not None:
            try:
                members = await self.members(group_id)
                if str((payload.get("sender") or {}).get("user_id")) not in members:
                    self._members.pop(group_id, None)  # joined since fetched?
                    members = await self.members(group_id)
            except ReplyError as exc:  # not a member any more (forbidden): the key is refused
                if exc.code not in ("forbidden", "not_found"):
                    raise
        session_id = megolm.accept_room_key(sender_key, payload, members)
        pushes: list[Push] = []
        for waiting in megolm.take_waiting(session_id):
            kind, data = waiting["event"], waiting["data"]
            try:
                if kind == "message.edited":
                    pushes.append({"type": kind, "data": await self._decrypt_edit(data)})
                else:
                    pushes.append({"type": kind, "data": dict(await self.decrypt(data))})
            except WaitingForKey as exc:
                for dropped in megolm.keep_waiting(exc.session_id, kind, data):
                    log.warning("e2e: message %s waited too long for its room key: no longer kept", dropped)
            except DecryptionError as exc:
                pushes.append(self._refused(kind, data, exc))
        return pushes

    async def _decrypt_edit(self, data: Mapping[str, Any]) -> dict[str, Any]:
        device = self._device()
        ident = f"{data['message_id']}@{data.get('edited_at')}"
        stand_in = {**data, "message_id": ident, "sent_at": data.get("edited_at", ""), "seq": data.get("seq", 0)}
        original = device.store.messages.get(str(data["message_id"]))
        if original is not None:
            stand_in["from_user_id"] = original["from_user_id"]
        edit = await self.decrypt(stand_in)
        device.store.messages[ident]["source"] = "edit"  # kept: the same edit again reads from it
        shown = {k: v for k, v in data.items() if k != "encrypted"}
        shown["text"] = edit.get("text", "")
        if original is not None:
            original["payload"] = {**original["payload"], "text": shown["text"]}
        device.store.save()
        return shown

    async def _note_encrypted(self, data: Mapping[str, Any]) -> None:
        device = self._device()
        for conversation in (await self.client.call("conversations.list")).get("conversations", []):
            if conversation.get("conversation_id") == data.get("conversation_id"):
                self._note_listed({**conversation, "encrypted_at": conversation.get("encrypted_at")
                                   or data.get("encrypted_at")})
        device.store.save()

    async def _device_message(self, data: Mapping[str, Any]) -> Push | None:
        device = self._device()
        try:
            try:
                device.to_device_sender(data, others=True)
            except DecryptionError:  # not pinned yet: mine, the sender's if named, my groups' members
                users = {device.user_id} | ({str(data["from_user_id"])} if data.get("from_user_id") else set())
                if not data.get("from_user_id"):
                    for group_id in list(device.store.encrypted_groups):
                        users.update(await self.members(group_id))
                users_list = sorted(users)
                for start in range(0, len(users_list), 100):
                    await self.refresh_devices(users_list[start:start + 100])
            sender_user, _ = device.to_device_sender(data, others=True)
            payload = device.open_to_device(data, others=True)
            if payload.get("type") == "room_key":
                pushes = await self._room_key(str(data.get("sender_key")), payload)
            elif sender_user != device.user_id:
                raise DecryptionError("bad_payload", f"a {payload.get('type')!r} to-device message from another user")
            else:
                pushes = []
        except DecryptionError as exc:
            self.errors.append(exc)
            await self.client.call("devices.ack", {"ids": [data["id"]]})  # it never will decrypt
            return {"type": "e2e.error", "data": {"event": "device.message", "id": data.get("id"),
                                                  "reason": exc.reason, "detail": exc.detail}}
        result: Push
        if payload.get("type") == "room_key":
            await self.client.call("devices.ack", {"ids": [data["id"]]})  # kept in the store first
            for opened in pushes:
                self.client._deliver_now(opened)
            return {"type": "e2e.room_key", "data": {
                "from_user_id": sender_user, "from_device_id": data.get("from_device_id"),
                "conversation_id": payload.get("conversation_id"), "session_id": payload.get("session_id"),
                "opened": len(pushes)}}
        if payload.get("type") == "history":
            imported = device.import_shared(payload.get("items") or [])
            result = {"type": "e2e.history", "data": {
                "from_device_id": data.get("from_device_id"), "batch": payload.get("batch"),
                "part": payload.get("part"), "parts": payload.get("parts"), "imported": imported}}
        else:
            result = {"type": "device.message", "data": {**data, "payload": payload}}
        await self.client.call("devices.ack", {"ids": [data["id"]]})
        return result
