"""The device's end-to-end state on disk, in one file the application names.

- the Olm account and sessions as vodozemac pickles (encrypted with the 32-byte pickle key);
- the pinned keys of every device seen (trust on first use), with what was verified or changed;
- Megolm: this device's outbound session per encrypted group, the inbound sessions shared with
  it (pickled), which message indexes were opened (replays), and the group messages that wait
  for their room key (ciphertext as the server sent it: kept so that acknowledging them loses
  nothing);
- the messages this device decrypted (or sent, or was given by another of its devices), so that
  history can be shown again and shared with a new device: the server can never resend them
  in a form this device can read.

The whole document is sealed with AES-256-GCM under a key derived from the pickle key, so the
decrypted messages are not lying on disk in clear either. The file (and the pickle key, when
this module generated it: `<store>.key`) are written with mode 0600, atomically (a temporary
file renamed over the old one).
"""
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, TypedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from parley_client.e2e.primitives import E2EError

FORMAT = 1
MAGIC = b"parley-e2e-store:1\n"


class DevicePin(TypedDict):
    """What this device remembers of another device's keys."""

    identity_key: str  # Curve25519
    signing_key: str  # Ed25519
    verified: bool  # by safety number or QR, for these keys
    identity_changed: bool  # the keys changed after they were first pinned (not acknowledged yet)
    previous_signing_keys: list[str]
    removed: bool  # keys.changed "removed" (or gone from keys.devices)


class StoredMessage(TypedDict):
    """A message as this device can show it: the server's fields and the decrypted payload."""

    message_id: str
    conversation_id: str
    seq: int
    from_user_id: str
    sender_device_id: str
    sent_at: str
    payload: dict[str, Any]  # docs/security.md "Payload"
    # "decrypted", "sent" (by this device), "shared" (by another of my devices), or "edit" (an
    # edit's payload, kept under "<message_id>@<edited_at>"; the message's own record has its text)
    source: str


def load_pickle_key(store_path: str | os.PathLike[str], pickle_key: bytes | None) -> bytes:
    """The application's key, or the one kept beside the store (`<store>.key`, made on first use)."""
    if pickle_key is not None:
        if len(pickle_key) != 32:
            raise ValueError("the pickle key is 32 bytes")
        return pickle_key
    key_path = Path(f"{os.fspath(store_path)}.key")
    if key_path.exists():
        key = key_path.read_bytes()
        if len(key) != 32:
            raise E2EError(f"{key_path} does not hold a 32-byte key")
        return key
    key = secrets.token_bytes(32)
    _write_private(key_path, key)
    return key


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class E2EStore:
    """The document, loaded in memory, written back by `save()` after every change of state
    (an Olm session that ratcheted must never be forgotten, or its next message would not
    decrypt)."""

    def __init__(self, path: str | os.PathLike[str], pickle_key: bytes | None = None):
        self.path = Path(path)
        self.pickle_key = load_pickle_key(path, pickle_key)
        self._seal = AESGCM(hashlib.sha256(b"parley-e2e-store\x00" + self.pickle_key).digest())
        self.user_id: str | None = None
        self.device_id: str | None = None
        self.account: str | None = None  # vodozemac pickle
        self.device_keys_published = False
        self.sessions: dict[str, list[str]] = {}  # peer identity key -> session pickles, most recent first
        self.pins: dict[str, dict[str, DevicePin]] = {}  # user_id -> device_id -> pin
        self.messages: dict[str, StoredMessage] = {}  # message_id -> message
        self.seen_ciphertexts: dict[str, str] = {}  # sha256(body)[:32] -> message_id (replays)
        self.seen_payloads: dict[str, str] = {}  # payload id -> message_id (replays)
        self.encrypted_conversations: dict[str, str] = {}  # peer user_id -> conversation_id
        # Megolm (encrypted groups, group.py): all absent from a store of step one
        self.encrypted_groups: dict[str, str] = {}  # group_id -> conversation_id
        self.outbound: dict[str, dict[str, Any]] = {}  # conversation_id -> this device's outbound session
        self.inbound: dict[str, dict[str, Any]] = {}  # session_id -> an inbound session and whose it is
        self.megolm_seen: dict[str, str] = {}  # "<session_id>:<index>" -> message_id (replays)
        self.waiting: dict[str, list[dict[str, Any]]] = {}  # session_id -> messages waiting for its key
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        if not raw.startswith(MAGIC):
            raise E2EError(f"{self.path} is not a Parley end-to-end store")
        body = raw[len(MAGIC):]
        try:
            doc = json.loads(self._seal.decrypt(body[:12], body[12:], MAGIC))
        except InvalidTag as exc:
            raise E2EError(f"{self.path}: wrong pickle key (or the file was changed)") from exc
        if doc.get("format") != FORMAT:
            raise E2EError(f"{self.path}: unknown store format {doc.get('format')!r}")
        self.user_id, self.device_id = doc["user_id"], doc["device_id"]
        self.account = doc["account"]
        self.device_keys_published = doc["device_keys_published"]
        self.sessions = doc["sessions"]
        self.pins = doc["pins"]
        self.messages = doc["messages"]
        self.seen_ciphertexts = doc["seen_ciphertexts"]
        self.seen_payloads = doc["seen_payloads"]
        self.encrypted_conversations = doc["encrypted_conversations"]
        self.encrypted_groups = doc.get("encrypted_groups", {})
        self.outbound = doc.get("outbound", {})
        self.inbound = doc.get("inbound", {})
        self.megolm_seen = doc.get("megolm_seen", {})
        self.waiting = doc.get("waiting", {})

    def save(self) -> None:
        doc = {
            "format": FORMAT, "user_id": self.user_id, "device_id": self.device_id, "account": self.account,
            "device_keys_published": self.device_keys_published, "sessions": self.sessions, "pins": self.pins,
            "messages": self.messages, "seen_ciphertexts": self.seen_ciphertexts,
            "seen_payloads": self.seen_payloads, "encrypted_conversations": self.encrypted_conversations,
            "encrypted_groups": self.encrypted_groups, "outbound": self.outbound, "inbound": self.inbound,
            "megolm_seen": self.megolm_seen, "waiting": self.waiting,
        }
        nonce = secrets.token_bytes(12)
        plain = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        _write_private(self.path, MAGIC + nonce + self._seal.encrypt(nonce, plain, MAGIC))
