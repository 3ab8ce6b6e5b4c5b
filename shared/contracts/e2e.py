"""End-to-end encryption (docs/security.md, issue 28): the key directory's operations (auth), the
encrypted envelopes a message carries (Olm in a direct conversation, Megolm in a group),
to-device messages, and their pushes.

Keys, signatures and ciphertexts are opaque to the server but for their shape: Curve25519 and
Ed25519 keys are 32 bytes and Ed25519 signatures 64, written as Olm prints them (unpadded
standard base64). The server checks every signature (services/auth/domain/signatures.py).
"""
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, TypeAdapter, model_validator

from shared.contracts.base import Contract

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
DeviceId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
# A Curve25519 or Ed25519 public key: 32 bytes, unpadded base64.
PublicKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{43}$")]
# An Ed25519 signature: 64 bytes, unpadded base64.
Signature = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{86}$")]
KeyId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]

ALGORITHM = "olm.v1"  # a direct conversation's envelope: one Olm ciphertext per device
MEGOLM_ALGORITHM = "megolm.v1"  # a group's: one Megolm ciphertext for every device
MAX_CIPHERTEXTS = 64  # one per device of a direct conversation's two users
# An Olm ciphertext's base64: room for a 4,000-character message of CJK text (12,000 UTF-8 bytes)
# in the clients' payload, as a plain message allows (docs/security.md).
MAX_BODY_CHARS = 22_000
MAX_ONE_TIME_KEYS_PER_PUBLISH = 100
MAX_UNCLAIMED_ONE_TIME_KEYS = 200  # per device; past it keys.publish is `conflict`
LOW_ONE_TIME_KEYS = 20  # a claim leaving fewer pushes keys.low to the device
MAX_DEVICE_MESSAGES_PER_SEND = 64  # a room key to each device of a group's members, in a few sends

KeyChange = Literal["added", "replaced", "removed"]
OlmType = Literal[0, 1]  # 0: a pre-key message (opens a session), 1: a normal one
Body = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY_CHARS)]


# --- the key directory (auth) --------------------------------------------------------------
class DeviceKeys(Contract):
    """A device's long-term keys, signed with its Ed25519 key (`device` line, docs/security.md)."""

    identity_key: PublicKey  # Curve25519
    signing_key: PublicKey  # Ed25519
    signature: Signature


class SignedKey(Contract):
    """A one-time key or the fallback key, signed with the device's Ed25519 key."""

    key_id: KeyId
    key: PublicKey  # Curve25519
    signature: Signature


class KeysPublish(Contract):
    device_keys: DeviceKeys | None = None
    one_time_keys: Annotated[list[SignedKey], Field(max_length=MAX_ONE_TIME_KEYS_PER_PUBLISH)] | None = None
    fallback_key: SignedKey | None = None

    @model_validator(mode="after")
    def _key_ids_once(self) -> "KeysPublish":
        ids = [k.key_id for k in self.one_time_keys or ()]
        if len(ids) != len(set(ids)):
            raise ValueError("one_time_keys: each key_id at most once")
        return self


class KeysPublishReply(Contract):
    one_time_key_count: int  # this device's unclaimed one-time keys


class KeysDevices(Contract):
    user_ids: Annotated[list[Id], Field(min_length=1, max_length=100)]


class DeviceKeysEntry(Contract):
    user_id: str
    device_id: str
    identity_key: str
    signing_key: str
    signature: str
    published_at: str


class KeysDevicesReply(Contract):
    devices: list[DeviceKeysEntry]


class DeviceRef(Contract):
    user_id: Id
    device_id: DeviceId


class KeysClaim(Contract):
    devices: Annotated[list[DeviceRef], Field(min_length=1, max_length=100)]


class ClaimedKey(Contract):
    user_id: str
    device_id: str
    key_id: str
    key: str
    signature: str
    fallback: bool  # the device had no one-time key left: its fallback key (handed out again)


class KeysClaimReply(Contract):
    keys: list[ClaimedKey]


class KeysRemove(Contract):
    """This device's keys are removed: it can no longer be written to."""


class KeysChanged(Contract):
    """Push `keys.changed` (and the event auth publishes for chat, which fans it out): a device's
    keys were published for the first time, replaced, or removed."""

    user_id: str
    device_id: str
    change: KeyChange


class KeysLowPush(Contract):
    """Push `keys.low` to a device whose unclaimed one-time keys fell under LOW_ONE_TIME_KEYS."""

    one_time_key_count: int


# --- encrypted messages (chat) ---------------------------------------------------------------
class Ciphertext(Contract):
    """One device's Olm ciphertext of a message."""

    user_id: Id
    device_id: DeviceId
    type: OlmType
    body: Body


class OlmEncrypted(Contract):
    """A direct conversation's message content: one Olm ciphertext per device of the two users
    (the sender's other devices included), stored and delivered whole."""

    algorithm: Literal["olm.v1"]
    sender_key: PublicKey  # the sending device's Curve25519 identity key
    ciphertexts: Annotated[list[Ciphertext], Field(min_length=1, max_length=MAX_CIPHERTEXTS)]

    @model_validator(mode="after")
    def _each_device_once(self) -> "OlmEncrypted":
        devices = {(c.user_id, c.device_id) for c in self.ciphertexts}
        if len(devices) != len(self.ciphertexts):
            raise ValueError("ciphertexts: each (user_id, device_id) at most once")
        return self


class MegolmEncrypted(Contract):
    """A group's message content: one Megolm ciphertext of the sending device's outbound session
    (whose key it shared with the other devices as to-device messages), stored and delivered whole."""

    algorithm: Literal["megolm.v1"]
    sender_key: PublicKey  # the sending device's Curve25519 identity key
    session_id: Id  # the Megolm session's id, as the library prints it
    ciphertext: Body


# The `encrypted` of a message or an edit: which kind, by `algorithm` (a direct conversation
# takes olm.v1, a group megolm.v1: services/chat/domain/encryption.py check_content).
Encrypted = Annotated[OlmEncrypted | MegolmEncrypted, Field(discriminator="algorithm")]
ENVELOPE: TypeAdapter[OlmEncrypted | MegolmEncrypted] = TypeAdapter(Encrypted)


# --- to-device messages (chat) ---------------------------------------------------------------
class DeviceMessage(Contract):
    """An Olm ciphertext to one device: one of the sender's own (`user_id` absent) or one of a
    user who shares an end-to-end encrypted conversation with the sender (a group's room key)."""

    user_id: Id | None = None  # absent: the sender's own device
    device_id: DeviceId
    sender_key: PublicKey
    type: OlmType
    body: Body


class DevicesSend(Contract):
    messages: Annotated[list[DeviceMessage], Field(min_length=1, max_length=MAX_DEVICE_MESSAGES_PER_SEND)]


class DevicesSendReply(Contract):
    ids: list[str]  # in the order of `messages`


class DevicesAck(Contract):
    ids: Annotated[list[Id], Field(min_length=1, max_length=100)]


class DeviceMessagePush(Contract):
    """Push `device.message`: live, and on every bind before `sync.done`, until acknowledged."""

    id: str
    from_user_id: str
    from_device_id: str
    sender_key: str
    type: OlmType
    body: str
    sent_at: str
