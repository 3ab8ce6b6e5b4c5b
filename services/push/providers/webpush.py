"""Web Push (docs/push.md "Providers"): a notification to a browser's push service (Google's,
Mozilla's, Apple's, ...) per RFC 8030, encrypted for that browser alone (RFC 8291 `aes128gcm`:
the push service sees only ciphertext and headers) and signed as this deployment (RFC 8292
VAPID: the push service accepts it only from the key the browser subscribed with).

The VAPID key pair is the deployment's: every replica must sign with the same key, or browsers'
subscriptions made against one key are refused when another sends. Production sets
PARLEY_PUSH_VAPID_PRIVATE_KEY (PEM, from a secret); the key file beside it is made on first start
for development only (`load_vapid_key`)."""
import asyncio
import base64
import binascii
import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import http_ece  # type: ignore[import-untyped]  # ships neither stubs nor py.typed
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02  # type: ignore[import-untyped]  # ships neither stubs nor py.typed

from services.push.domain.ports import Outgoing, Sent
from services.push.providers.native import retry_after
from shared.contracts.push import Notification, ProviderKind
from shared.logs import log_event
from shared.settings import Settings

log = logging.getLogger(__name__)

# RFC 8030 7.2: push services must accept payloads of 4096 bytes (and may refuse more). One
# aes128gcm record (RFC 8291 4: a push message is a single record) costs a 86-byte header (salt
# 16, record size 4, key id length 1, the sender's public key 65), a delimiter byte and a 16-byte
# tag: what is left is the JSON's budget.
MAX_BODY = 4096
MAX_PLAINTEXT = MAX_BODY - 86 - 1 - 16
# VAPID JWTs (RFC 8292 2: `exp` at most 24 h ahead) live 12 h and are renewed in their last hour,
# one per push service origin: signing once per origin, not once per notification.
JWT_LIFETIME_SECONDS = 12 * 3600
JWT_RENEW_SECONDS = 3600
MAX_CACHED_ORIGINS = 64
# What of a refusal's body goes into `Sent.detail` (and so the logs).
DETAIL_BYTES = 300
TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Browsers give base64url without padding; some libraries give standard base64: both read."""
    text = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- the deployment's VAPID key -----------------------------------------------------------------
def parse_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PEM (PKCS#8 or SEC1), or the raw 32-byte scalar in base64url that
    web-push tools print. ValueError for anything else."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
    else:
        raw = b64url_decode(text)
        if len(raw) != 32:
            raise ValueError("a VAPID private key is a PEM or 32 bytes in base64url")
        key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("a VAPID key must be an EC P-256 private key")
    return key


def load_vapid_key(settings: Settings) -> ec.EllipticCurvePrivateKey | None:
    """The deployment's VAPID key: `push_vapid_private_key` (PEM) if set; else the PEM in
    `push_vapid_private_key_file`, made there (0600) if missing; None when neither is set (Web Push
    off). A key that is there but unreadable raises: a silently new key would orphan every
    browser's subscription."""
    if settings.push_vapid_private_key.strip():
        return parse_private_key(settings.push_vapid_private_key)
    if not settings.push_vapid_private_key_file:
        return None
    return _key_from_file(Path(settings.push_vapid_private_key_file))


def _key_from_file(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        return parse_private_key(path.read_text())
    except FileNotFoundError:
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside, then linked into place: nobody reads a half-written key, and of replicas
    # starting together one key wins (the others' link fails and they read the winner's).
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
        try:
            os.link(aside, path)
        except FileExistsError:
            return parse_private_key(path.read_text())
    finally:
        aside.unlink(missing_ok=True)
    log_event(log, "push.vapid_key_created", logging.WARNING, path=str(path),
              advice="development only: production sets PARLEY_PUSH_VAPID_PRIVATE_KEY")
    return key


def public_key_b64url(key: ec.EllipticCurvePrivateKey) -> str:
    """The `applicationServerKey` a browser subscribes with (`push.config`): the uncompressed
    P-256 point, base64url without padding."""
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url(point)


# --- what a subscription may be -----------------------------------------------------------------
def origin_of(endpoint: str) -> str | None:
    """The endpoint's origin (scheme://host[:port], the default port left out): the VAPID `aud`."""
    parts = urlsplit(endpoint)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("https", "http") or not parts.hostname or "@" in parts.netloc:
        return None
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port not in (None, default) else "")


def subscription_problem(endpoint: str | None, p256dh: str | None, auth: str | None) -> str | None:
    """Why a Web Push subscription can never be delivered to, or None. Browsers' push services are
    all https; plain http is taken only on this machine (the tests' receiver), so a client cannot
    make the server speak plain HTTP to its network. The push service can refuse such a
    subscription at `push.subscribe`; `send` answers `failed` for it."""
    if not endpoint or not p256dh or not auth:
        return "a Web Push subscription needs an endpoint, p256dh and auth"
    parts = urlsplit(endpoint)
    origin = origin_of(endpoint)
    if origin is None or not (parts.scheme == "https" or parts.hostname in LOOPBACK_HOSTS):
        return "the endpoint must be an https URL"
    try:
        point = b64url_decode(p256dh)
        if len(point) != 65:  # RFC 8291 3.1: the uncompressed point
            return "p256dh must be an uncompressed P-256 point"
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if len(b64url_decode(auth)) != 16:  # RFC 8291 3.2
            return "auth must be 16 bytes"
    except (ValueError, binascii.Error):
        return "p256dh or auth is not base64url of a P-256 public key and a 16-byte secret"
    return None


def topic_for(key: str) -> str:
    """A Web Push `Topic` (RFC 8030 5.4: at most 32 base64url characters) for `key`: `key`
    itself when it is one, else a hash of it (the same key, the same topic)."""
    if TOPIC.fullmatch(key):
        return key
    return b64url(hashlib.sha256(key.encode()).digest())[:32]


# --- the payload ----------------------------------------------------------------------------------
def payload_of(notification: Notification) -> bytes | None:
    """The notification's JSON, its body shortened until it fits one 4 KiB record (a long
    preview is cut, not the notification refused); None if even without a body it does not."""
    data = notification.model_dump_json(exclude_none=True).encode()
    while len(data) > MAX_PLAINTEXT:
        body = notification.body or ""
        if not body:
            return None
        encoded = body.encode()
        keep = max(0, len(encoded) - (len(data) - MAX_PLAINTEXT) - len("…".encode()))
        cut = encoded[:keep].decode(errors="ignore").rstrip()
        notification = notification.model_copy(update={"body": cut + "…" if cut else ""})
        data = notification.model_dump_json(exclude_none=True).encode()
    return data


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """RFC 8291: aes128gcm with a fresh ephemeral key (its public half is the record's key id)."""
    body: bytes = http_ece.encrypt(
        payload,
        salt=os.urandom(16),
        private_key=ec.generate_private_key(ec.SECP256R1()),
        dh=b64url_decode(p256dh),
        auth_secret=b64url_decode(auth),
        version="aes128gcm",
    )
    return body


# --- what the push service said --------------------------------------------------------------------
def outcome(status: int, retry_after_header: str | None, detail: str, now: float) -> Sent:
    """RFC 8030's answers as the port's outcomes: 2xx sent (201 Created, 202 Accepted when a
    receipt was asked); 404/410 the subscription is gone; 429 and 5xx retry, honouring
    Retry-After; any other refusal (400 malformed, 403 VAPID refused, 413 too large) failed."""
    if 200 <= status < 300:
        return Sent("sent", status)
    if status in (404, 410):
        return Sent("gone", status, detail=detail)
    if status == 429 or status >= 500:
        return Sent("retry", status, retry_after(retry_after_header, now), detail)
    return Sent("failed", status, detail=detail)


class VapidSigner:
    """`Authorization: vapid t=<JWT>,k=<public key>` (py_vapid's, as pywebpush sends it) per push
    service origin, each JWT reused until its last hour."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, subject: str, clock: Callable[[], float]) -> None:
        self._vapid = Vapid02(key)
        self._subject = subject
        self._clock = clock
        self._headers: dict[str, tuple[str, float]] = {}
        # A subject push services would refuse (neither mailto: nor https:) fails at start.
        self._vapid.sign({"aud": "https://push.example", "exp": int(clock()) + 60, "sub": subject})

    def header(self, origin: str) -> str:
        now = self._clock()
        cached = self._headers.get(origin)
        if cached is not None and cached[1] - now > JWT_RENEW_SECONDS:
            return cached[0]
        expires = int(now) + JWT_LIFETIME_SECONDS
        signed: str = self._vapid.sign({"aud": origin, "exp": expires, "sub": self._subject})["Authorization"]
        self._headers.pop(origin, None)
        while len(self._headers) >= MAX_CACHED_ORIGINS:  # the oldest first (insertion order)
            del self._headers[next(iter(self._headers))]
        self._headers[origin] = (signed, expires)
        return signed


class WebPushProvider:
    """The `Provider` for browsers (services/push/domain/ports.py)."""

    kind: ProviderKind = "webpush"

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        subject: str,
        *,
        timeout: float = 10.0,
        max_connections: int = 32,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._clock = clock
        self._timeout = timeout
        self._signer = VapidSigner(key, subject, clock)
        self._client = httpx.AsyncClient(
            http2=True,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> "WebPushProvider | None":
        """Built from PARLEY_PUSH_*; None when there is no VAPID key and none may be made."""
        key = load_vapid_key(settings)
        if key is None:
            return None
        return cls(
            key,
            settings.push_vapid_subject,
            timeout=settings.push_timeout_seconds,
            max_connections=settings.push_concurrency,
        )

    def public_key_b64url(self) -> str:
        return public_key_b64url(self._key)

    async def send(self, outgoing: Outgoing) -> Sent:
        subscription = outgoing.subscription
        endpoint, p256dh, auth = subscription.endpoint, subscription.p256dh, subscription.auth
        problem = subscription_problem(endpoint, p256dh, auth)
        if problem is not None or endpoint is None or p256dh is None or auth is None:
            return Sent("failed", detail=problem or "")
        payload = payload_of(outgoing.notification)
        if payload is None:
            return Sent("failed", detail="the notification does not fit in 4 KiB")
        origin = origin_of(endpoint)
        assert origin is not None  # subscription_problem checked it
        headers = {
            "TTL": str(max(0, outgoing.ttl_seconds)),
            "Urgency": outgoing.urgency,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Authorization": self._signer.header(origin),
        }
        if outgoing.topic:
            headers["Topic"] = topic_for(outgoing.topic)
        body = encrypt(payload, p256dh, auth)
        try:
            async with asyncio.timeout(self._timeout):  # the whole exchange, not each read
                return await self._post(endpoint, body, headers)
        except (TimeoutError, httpx.TimeoutException) as exc:
            return Sent("retry", detail=f"no answer within {self._timeout} s ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return Sent("retry", detail=f"{type(exc).__name__}: {exc}"[:DETAIL_BYTES])

    async def _post(self, endpoint: str, body: bytes, headers: dict[str, str]) -> Sent:
        async with self._client.stream("POST", endpoint, content=body, headers=headers) as response:
            detail = b""
            if not 200 <= response.status_code < 300:  # what it said, bounded: a body is not trusted
                async for chunk in response.aiter_bytes():
                    detail += chunk
                    if len(detail) >= DETAIL_BYTES:
                        break
            text = detail[:DETAIL_BYTES].decode(errors="replace")
            return outcome(response.status_code, response.headers.get("Retry-After"), text, self._clock())

    async def close(self) -> None:
        await self._client.aclose()
