"""APNs (docs/push.md, "Providers"): token-based authentication over HTTP/2, one
`POST /3/device/<token>` per notification.

The provider token is an ES256 JWT over the team's .p8 key (header `kid` = key id, claims `iss` =
team id and `iat`); Apple refuses one older than an hour and one refreshed more than every 20
minutes, so it is reused for 50 minutes, and replaced early only when APNs says it expired.
A message or call is an alert (priority 10 at high urgency, else 5) with the Parley notification
beside `aps` for the app; a withdraw is a background push (content-available, priority 5) the app
acts on by removing what it showed. 410 and BadDeviceToken mean the token is dead; 429 and 5xx
are retried.
"""
import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.push.domain.ports import Outgoing, Sent
from services.push.providers.native import fields, fitted, retry_after, short_id
from shared.contracts.push import Notification, ProviderKind
from shared.logs import log_event
from shared.settings import Settings

log = logging.getLogger("parley.push")

# Apple: a provider token is refused after an hour; refreshing more often than every 20 minutes
# is refused too (TooManyProviderTokenUpdates).
TOKEN_REUSE_SECONDS = 50 * 60
# An alert's payload may be at most 4096 bytes; its collapse id at most 64.
PAYLOAD_LIMIT = 4096
COLLAPSE_ID_LIMIT = 64
# The reasons (with 400) that mean this device token will never be accepted again.
DEAD_TOKEN_REASONS = {"BadDeviceToken"}


class ApnsProvider:
    kind: ProviderKind = "apns"

    def __init__(
        self,
        *,
        key: ec.EllipticCurvePrivateKey,
        key_id: str,
        team_id: str,
        topic: str,
        url: str,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        verify: ssl.SSLContext | bool = True,
    ):
        """`verify` is for tests only (a stand-in's self-signed certificate); a deployment always
        checks Apple's certificate."""
        self.key = key
        self.key_id = key_id
        self.team_id = team_id
        self.topic = topic
        self.url = url.rstrip("/")
        self.clock = clock
        self._client = httpx.AsyncClient(http2=True, timeout=timeout, verify=verify)
        self._token: str | None = None
        self._issued_at = 0.0
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> "ApnsProvider | None":
        """The provider when the deployment set APNs up (key file, key id, team id, topic), else None."""
        needed = {
            "PARLEY_PUSH_APNS_KEY_FILE": settings.push_apns_key_file,
            "PARLEY_PUSH_APNS_KEY_ID": settings.push_apns_key_id,
            "PARLEY_PUSH_APNS_TEAM_ID": settings.push_apns_team_id,
            "PARLEY_PUSH_APNS_TOPIC": settings.push_apns_topic,
        }
        missing = [name for name, value in needed.items() if not value]
        if len(missing) == len(needed):
            return None
        if missing:
            log_event(log, "push.apns.incomplete", logging.WARNING,
                      message=f"APNs needs {', '.join(missing)} too: off")
            return None
        return cls(key=load_key(Path(settings.push_apns_key_file).read_bytes()), key_id=settings.push_apns_key_id,
                   team_id=settings.push_apns_team_id, topic=settings.push_apns_topic,
                   url=settings.push_apns_url, timeout=settings.push_timeout_seconds)

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, outgoing: Outgoing) -> Sent:
        path = f"{self.url}/3/device/{outgoing.subscription.token or ''}"
        content = orjson.dumps(self.payload(outgoing))
        try:
            token = await self._provider_token()
            response = await self._client.post(path, content=content, headers=self.headers(outgoing, token))
            if response.status_code == 403 and _reason(response) == "ExpiredProviderToken":
                token = await self._provider_token(stale=token)
                response = await self._client.post(path, content=content, headers=self.headers(outgoing, token))
        except httpx.TransportError as exc:  # connection refused or reset, timeouts
            return Sent("retry", detail=f"{type(exc).__name__}: {exc}")
        return self._outcome(response)

    def headers(self, outgoing: Outgoing, token: str) -> dict[str, str]:
        withdraw = outgoing.notification.kind == "withdraw"
        headers = {
            "authorization": f"bearer {token}",
            "apns-topic": self.topic,
            "apns-push-type": "background" if withdraw else "alert",
            # Background pushes must go at priority 5; 10 wakes the device at once.
            "apns-priority": "10" if outgoing.urgency == "high" and not withdraw else "5",
            # 0: deliver now or never (APNs keeps nothing); else the UNIX time it stops trying.
            "apns-expiration": str((int(self.clock()) + outgoing.ttl_seconds) if outgoing.ttl_seconds > 0 else 0),
        }
        if outgoing.topic:
            headers["apns-collapse-id"] = short_id(outgoing.topic, COLLAPSE_ID_LIMIT)
        return headers

    def payload(self, outgoing: Outgoing) -> dict[str, Any]:
        """The JSON body: `aps` for iOS, `parley` (the notification) for the app."""
        notification = outgoing.notification
        if notification.kind == "withdraw":
            return {"aps": {"content-available": 1}, "parley": fields(notification)}
        return fitted(notification, _alert, PAYLOAD_LIMIT)

    def _outcome(self, response: httpx.Response) -> Sent:
        status = response.status_code
        if status == 200:
            return Sent("sent", status, detail=response.headers.get("apns-id", ""))
        reason = _reason(response)
        if status == 410 or (status == 400 and reason in DEAD_TOKEN_REASONS):
            return Sent("gone", status, detail=reason)
        if status == 429 or status >= 500:
            return Sent("retry", status, retry_after(response.headers.get("retry-after"), self.clock()), reason)
        if status == 403:
            # The key or team is refused (InvalidProviderToken): nothing goes out until someone looks.
            log_event(log, "push.apns.refused", logging.WARNING, status=status, reason=reason)
        return Sent("failed", status, detail=reason)

    async def _provider_token(self, stale: str | None = None) -> str:
        """The current provider JWT, or a new one when it is 50 minutes old or APNs called it
        expired (`stale`; unless another send replaced it meanwhile)."""
        async with self._token_lock:
            now = self.clock()
            if self._token is not None and self._token != stale and now - self._issued_at < TOKEN_REUSE_SECONDS:
                return self._token
            self._token = jwt.encode({"iss": self.team_id, "iat": int(now)}, self.key, algorithm="ES256",
                                     headers={"kid": self.key_id})
            self._issued_at = now
            return self._token


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    """The .p8 file Apple hands out: a PKCS#8 PEM P-256 key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the APNs key is not a P-256 (ES256) key")
    return key


def _alert(notification: Notification) -> dict[str, Any]:
    aps: dict[str, Any] = {"alert": {"title": notification.title or "", "body": notification.body or ""},
                           "sound": "default"}
    if notification.badge is not None:
        aps["badge"] = notification.badge
    if notification.conversation_id:
        aps["thread-id"] = notification.conversation_id
    return {"aps": aps, "parley": fields(notification)}


def _reason(response: httpx.Response) -> str:
    """APNs' error body is `{"reason": "..."}` (and `timestamp` with 410)."""
    try:
        data = response.json()
    except ValueError:
        return str(response.status_code)
    reason = data.get("reason") if isinstance(data, dict) else None
    return reason if isinstance(reason, str) else str(response.status_code)
