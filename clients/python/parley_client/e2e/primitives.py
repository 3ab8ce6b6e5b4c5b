"""What docs/security.md fixes byte for byte, without Olm: the signed strings, the safety
number, unpadded base64, and file encryption (AES-256-GCM).

Nothing here is a new primitive: SHA-512 and Ed25519/Curve25519 keys as Olm prints them, and
AES-256-GCM from `cryptography`.
"""
import base64
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from parley_client.errors import ParleyError

VERSION = "parley-e2e-v1"
SAFETY_NUMBER_ITERATIONS = 5200
QR_PREFIX = "parley-sn:1:"


class E2EError(ParleyError):
    """Something end-to-end encryption refuses: a message that cannot be decrypted (tampered,
    replayed, not for this device), a bad signature, a key that changed."""


def b64encode(raw: bytes) -> str:
    """Unpadded standard base64, as Olm prints keys and message bodies."""
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes:
    """Standard base64, padded or not (`E2EError` if it is not base64)."""
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (ValueError, TypeError) as exc:
        raise E2EError(f"not base64: {text[:20]!r}") from exc


# --- the strings a device signs (docs/security.md "Keys and signatures") ---------------------------
def device_keys_text(user_id: str, device_id: str, identity_key: str, signing_key: str) -> bytes:
    return "\n".join((VERSION, "device", user_id, device_id, identity_key, signing_key)).encode()


def one_time_key_text(user_id: str, device_id: str, key_id: str, key: str, fallback: bool = False) -> bytes:
    kind = "fallback_key" if fallback else "one_time_key"
    return "\n".join((VERSION, kind, user_id, device_id, key_id, key)).encode()


# --- safety numbers (docs/security.md "Trust") ---------------------------------------------------
def _fingerprint(user_id: str, signing_keys: Iterable[str]) -> str:
    """30 digits for one user: their devices' Ed25519 keys, raw bytes sorted bytewise and joined."""
    joined = b"".join(sorted(b64decode(key) for key in signing_keys))
    digest = hashlib.sha512(b"\x00\x00" + joined + user_id.encode()).digest()
    for _ in range(SAFETY_NUMBER_ITERATIONS):
        digest = hashlib.sha512(digest + joined).digest()
    return "".join(f"{int.from_bytes(digest[i:i + 5], 'big') % 100_000:05d}" for i in range(0, 30, 5))


def safety_number(user_a: str, keys_a: Iterable[str], user_b: str, keys_b: Iterable[str]) -> str:
    """60 digits: each user's 30, the smaller user_id's first. The same on both sides."""
    halves = sorted([(user_a, _fingerprint(user_a, keys_a)), (user_b, _fingerprint(user_b, keys_b))])
    return halves[0][1] + halves[1][1]


def format_safety_number(digits: str) -> str:
    """12 groups of 5 digits, as shown to people."""
    return " ".join(digits[i:i + 5] for i in range(0, len(digits), 5))


def safety_qr(digits: str) -> str:
    """What the QR code encodes."""
    return QR_PREFIX + digits


def parse_safety_qr(text: str) -> str:
    """The 60 digits of a scanned `parley-sn:1:<digits>` (`E2EError` for anything else)."""
    digits = text.removeprefix(QR_PREFIX)
    if not text.startswith(QR_PREFIX) or len(digits) != 60 or not digits.isdigit():
        raise E2EError("not a Parley safety number code")
    return digits


# --- files: AES-256-GCM, the key inside the encrypted message -------------------------------------
@dataclass(frozen=True)
class FileSecret:
    """What the encrypted message carries so that its recipients can read the file."""

    key: str  # 32 bytes, unpadded base64
    nonce: str  # 12 bytes, unpadded base64
    sha256: str  # hex SHA-256 of the ciphertext (what is uploaded)


def encrypt_file(plaintext: bytes) -> tuple[bytes, FileSecret]:
    """A fresh key and nonce; the ciphertext (with its 16-byte tag) and what decrypts it."""
    key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, None)
    return ciphertext, FileSecret(b64encode(key), b64encode(nonce), hashlib.sha256(ciphertext).hexdigest())


def decrypt_file(ciphertext: bytes, secret: FileSecret) -> bytes:
    """The file's bytes; `E2EError` when the ciphertext is not the one the message named."""
    if hashlib.sha256(ciphertext).hexdigest() != secret.sha256:
        raise E2EError("the file's SHA-256 is not the one in the message: changed or not the file")
    try:
        return AESGCM(b64decode(secret.key)).decrypt(b64decode(secret.nonce), ciphertext, None)
    except (InvalidTag, ValueError) as exc:
        raise E2EError("the file does not decrypt with the message's key (tampered)") from exc
