"""A device's keys as Olm would make them, without Olm: a real Ed25519 signing key (the server
checks its signatures) and random 32-byte stand-ins for the Curve25519 keys, which the server
never uses. For the server's tests only; the clients' tests talk real Olm (vodozemac, libolm)."""
import base64
import os
import secrets
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def b64(raw: bytes) -> str:
    """Unpadded base64, as Olm prints keys."""
    return base64.b64encode(raw).decode().rstrip("=")


def curve_key() -> str:
    return b64(os.urandom(32))


def ciphertext_body(marker: str = "") -> str:
    """An opaque stand-in for an Olm ciphertext (base64 of random bytes, a marker's bytes hidden
    inside only as the caller chooses: the server must never see a marker in clear)."""
    return b64(os.urandom(48) + marker.encode())


class FakeDevice:
    """A user's device: its keys, and the signed payloads of keys.publish."""

    def __init__(self, user_id: str, device_id: str):
        self.user_id, self.device_id = user_id, device_id
        self.signing = Ed25519PrivateKey.generate()
        self.signing_key = b64(self.signing.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
        self.identity_key = curve_key()

    def sign(self, kind: str, *fields: str) -> str:
        return b64(self.signing.sign("\n".join(("parley-e2e-v1", kind, *fields)).encode()))

    def device_keys(self) -> dict[str, str]:
        signature = self.sign("device", self.user_id, self.device_id, self.identity_key, self.signing_key)
        return {"identity_key": self.identity_key, "signing_key": self.signing_key, "signature": signature}

    def signed_key(self, kind: str = "one_time_key", key_id: str | None = None) -> dict[str, str]:
        key_id, key = key_id or secrets.token_urlsafe(6), curve_key()
        return {"key_id": key_id, "key": key, "signature": self.sign(kind, self.user_id, self.device_id, key_id, key)}

    def one_time_keys(self, n: int) -> list[dict[str, str]]:
        return [self.signed_key() for _ in range(n)]

    def publish(self, one_time: int = 0, fallback: bool = False) -> dict[str, Any]:
        """keys.publish's data: the device keys, `one_time` one-time keys, a fallback key."""
        data: dict[str, Any] = {"device_keys": self.device_keys()}
        if one_time:
            data["one_time_keys"] = self.one_time_keys(one_time)
        if fallback:
            data["fallback_key"] = self.signed_key("fallback_key")
        return data


def envelope(sender: FakeDevice, *devices: tuple[str, str], marker: str = "") -> dict[str, Any]:
    """An `encrypted` envelope from `sender` with one ciphertext per (user_id, device_id)."""
    return {
        "algorithm": "olm.v1",
        "sender_key": sender.identity_key,
        "ciphertexts": [
            {"user_id": u, "device_id": d, "type": 0, "body": ciphertext_body(marker)} for u, d in devices
        ],
    }


def megolm_envelope(sender: FakeDevice, session_id: str = "session-1", marker: str = "") -> dict[str, Any]:
    """A group's `encrypted` envelope from `sender`: one opaque Megolm ciphertext."""
    return {
        "algorithm": "megolm.v1",
        "sender_key": sender.identity_key,
        "session_id": session_id,
        "ciphertext": ciphertext_body(marker),
    }
