"""The signatures of the key directory (docs/security.md "Keys and signatures"): a device signs,
with its Ed25519 key, the UTF-8 of `parley-e2e-v1` and what it vouches for, joined by `\\n`.
The server checks each one on publish; clients check them again against the key they pinned."""
import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.contracts.errors import ParleyError

CONTEXT = "parley-e2e-v1"


def signed_text(kind: str, *fields: str) -> bytes:
    """What a device signs: `parley-e2e-v1`, the kind (`device`, `one_time_key`, `fallback_key`),
    then the fields, one a line."""
    return "\n".join((CONTEXT, kind, *fields)).encode()


def unpadded_b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def check_signature(signing_key: str, signature: str, message: bytes, field: str) -> None:
    """bad_request naming `field` unless `signature` is `signing_key`'s Ed25519 signature of `message`."""
    try:
        Ed25519PublicKey.from_public_bytes(unpadded_b64decode(signing_key)).verify(
            unpadded_b64decode(signature), message
        )
    except (InvalidSignature, ValueError, binascii.Error):
        raise ParleyError.bad_request(f"{field}: the signature does not verify with the device's signing key") from None
