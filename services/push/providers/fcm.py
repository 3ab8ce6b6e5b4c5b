"""FCM HTTP v1 (docs/push.md, "Providers"): an OAuth2 access token for the deployment's service
account (the JWT bearer grant, RFC 7523: an RS256 assertion posted to the token endpoint), kept
until shortly before it expires, then one `messages:send` per notification.

The notification travels as a data message (every value a string, as FCM requires) that the
Android app shows itself, so that a `withdraw` can remove what a `message` showed; urgency maps
to the Android priority, the TTL to `android.ttl` and the topic to `android.collapse_key`.
FCM's documented error codes decide the outcome: UNREGISTERED (404), or INVALID_ARGUMENT (400)
about the registration token, means the token is dead; 429 and 5xx are retried; a 401 gets a
fresh access token once.
"""
import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.push.domain.ports import Outgoing, Sent
from services.push.providers.native import fields, fitted, retry_after
from shared.contracts.push import ProviderKind
from shared.logs import log_event
from shared.settings import Settings

log = logging.getLogger("parley.push")

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# An assertion may live at most an hour (Google's limit); it is used once, at once.
ASSERTION_SECONDS = 3600
# A cached access token is replaced this long before it expires (at most half its lifetime), so
# that no send carries a token that expires on the way.
REFRESH_MARGIN_SECONDS = 60.0
# FCM refuses a message whose data is over 4096 bytes.
DATA_LIMIT = 4096


@dataclass(frozen=True)
class ServiceAccount:
    """The fields of a Google service-account key file (JSON) the JWT bearer grant needs."""

    client_email: str
    private_key: rsa.RSAPrivateKey
    private_key_id: str | None = None

    @classmethod
    def from_json(cls, raw: bytes) -> "ServiceAccount":
        data = orjson.loads(raw)
        if not isinstance(data, dict) or not data.get("client_email") or not data.get("private_key"):
            raise ValueError("not a service-account key file: client_email and private_key are required")
        key = serialization.load_pem_private_key(str(data["private_key"]).encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the service account's private_key is not an RSA key")
        return cls(str(data["client_email"]), key, data.get("private_key_id") or None)


class _Refused(Exception):
    """The token endpoint did not give a token: what the send comes to."""

    def __init__(self, sent: Sent):
        super().__init__(sent.detail)
        self.sent = sent


class FcmProvider:
    kind: ProviderKind = "fcm"

    def __init__(
        self,
        *,
        project_id: str,
        account: ServiceAccount,
        url: str,
        token_url: str,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ):
        self.project_id = project_id
        self.account = account
        self.send_url = f"{url.rstrip('/')}/v1/projects/{project_id}/messages:send"
        self.token_url = token_url
        self.clock = clock
        self._client = httpx.AsyncClient(timeout=timeout)
        self._token: str | None = None
        self._expires_at = 0.0
        # One token request at a time: a burst of sends after expiry asks once, not once each.
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> "FcmProvider | None":
        """The provider when the deployment set FCM up, else None (FCM is off)."""
        project, credentials = settings.push_fcm_project_id, settings.push_fcm_credentials_file
        if not project and not credentials:
            return None
        if not project or not credentials:
            log_event(log, "push.fcm.incomplete", logging.WARNING,
                      message="FCM needs both PARLEY_PUSH_FCM_PROJECT_ID and PARLEY_PUSH_FCM_CREDENTIALS_FILE: off")
            return None
        account = ServiceAccount.from_json(Path(credentials).read_bytes())
        return cls(project_id=project, account=account, url=settings.push_fcm_url,
                   token_url=settings.push_fcm_token_url, timeout=settings.push_timeout_seconds)

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, outgoing: Outgoing) -> Sent:
        body = self.message(outgoing)
        try:
            token = await self._access_token()
            response = await self._post(body, token)
            if response.status_code == 401 and _error(response)[0] != "THIRD_PARTY_AUTH_ERROR":
                # Revoked or expired early: one fresh token, one more try.
                token = await self._access_token(stale=token)
                response = await self._post(body, token)
        except _Refused as refused:
            return refused.sent
        except httpx.TransportError as exc:  # connection refused or reset, timeouts
            return Sent("retry", detail=f"{type(exc).__name__}: {exc}")
        return self._outcome(response)

    def message(self, outgoing: Outgoing) -> dict[str, Any]:
        """The `messages:send` body for `outgoing` (FCM's `Message` resource)."""
        notification = outgoing.notification
        data = fitted(notification, lambda n: _strings(fields(n)), DATA_LIMIT)
        android: dict[str, str] = {
            "priority": "HIGH" if outgoing.urgency == "high" else "NORMAL",
            "ttl": f"{outgoing.ttl_seconds}s",
        }
        if outgoing.topic:
            android["collapse_key"] = outgoing.topic
        return {"message": {"token": outgoing.subscription.token or "", "data": data, "android": android}}

    async def _post(self, body: dict[str, Any], token: str) -> httpx.Response:
        return await self._client.post(
            self.send_url, content=orjson.dumps(body),
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )

    def _outcome(self, response: httpx.Response) -> Sent:
        status = response.status_code
        if status == 200:
            name = _json(response).get("name")
            return Sent("sent", status, detail=name if isinstance(name, str) else "")
        code, message, about_token = _error(response)
        detail = f"{code}: {message}" if message else code
        if (status == 404 and code == "UNREGISTERED") or (status == 400 and code == "INVALID_ARGUMENT" and about_token):
            return Sent("gone", status, detail=detail)
        if status == 429 or status >= 500:
            return Sent("retry", status, retry_after(response.headers.get("retry-after"), self.clock()), detail)
        return Sent("failed", status, detail=detail)

    async def _access_token(self, stale: str | None = None) -> str:
        """The cached access token unless it is `stale` (refused) or about to expire; else a new one."""
        async with self._token_lock:
            if self._token is not None and self._token != stale and self.clock() < self._expires_at:
                return self._token
            self._token = None
            token, lifetime = await self._fetch_token()
            self._token = token
            self._expires_at = self.clock() + lifetime - min(REFRESH_MARGIN_SECONDS, lifetime / 2)
            return token

    async def _fetch_token(self) -> tuple[str, float]:
        now = int(self.clock())
        claims = {"iss": self.account.client_email, "scope": SCOPE, "aud": self.token_url,
                  "iat": now, "exp": now + ASSERTION_SECONDS}
        headers = {"kid": self.account.private_key_id} if self.account.private_key_id else None
        assertion = jwt.encode(claims, self.account.private_key, algorithm="RS256", headers=headers)
        response = await self._client.post(self.token_url, data={"grant_type": GRANT_TYPE, "assertion": assertion})
        status = response.status_code
        answer = _json(response)
        if status == 200 and isinstance(answer.get("access_token"), str):
            expires_in = answer.get("expires_in", ASSERTION_SECONDS)
            lifetime = float(expires_in) if isinstance(expires_in, int | float) else float(ASSERTION_SECONDS)
            log_event(log, "push.fcm.token", logging.DEBUG, expires_in=lifetime)
            return answer["access_token"], lifetime
        detail = f"access token: {answer.get('error', status)}: {answer.get('error_description', '')}"
        if status == 429 or status >= 500:
            raise _Refused(Sent("retry", status, retry_after(response.headers.get("retry-after"), self.clock()), detail))
        # The service account is refused (revoked key, wrong clock): no send can succeed until
        # someone looks; said once per notification, loudly.
        log_event(log, "push.fcm.token_refused", logging.WARNING, status=status, detail=detail)
        raise _Refused(Sent("failed", status, detail=detail))


def _strings(data: dict[str, object]) -> dict[str, str]:
    return {key: str(value) for key, value in data.items()}


def _json(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or {} (a proxy's HTML error page, an empty body)."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error(response: httpx.Response) -> tuple[str, str, bool]:
    """From FCM's error body (google.rpc.Status): the FCM error code (FcmError.errorCode, else
    the status), the message, and whether it is about the registration token."""
    error = _json(response).get("error")
    if not isinstance(error, dict):
        return str(response.status_code), "", False
    code = str(error.get("status") or response.status_code)
    message = str(error.get("message") or "")
    about_token = "registration token" in message.lower()
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        if str(detail.get("@type", "")).endswith("google.firebase.fcm.v1.FcmError") and detail.get("errorCode"):
            code = str(detail["errorCode"])
        for violation in detail.get("fieldViolations") or []:
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                about_token = True
    return code, message, about_token
