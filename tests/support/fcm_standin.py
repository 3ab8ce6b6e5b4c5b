"""A stand-in for Google's OAuth2 token endpoint and FCM's HTTP v1 `messages:send`, on 127.0.0.1
over HTTP/1.1 (uvicorn, in this process), for tests of services/push/providers/fcm.py: neither
Google nor Firebase can be reached from here.

It holds the provider to the documented API: the token endpoint takes only the JWT bearer
grant with an RS256 assertion signed by the service account's key (issuer, audience, scope,
an hour at most) and gives out access tokens; `messages:send` takes only a valid, unrevoked
access token and a `Message` of the documented shape (data values all strings, an Android
priority and TTL). It records what it accepted; a test scripts answers per device token
(`answer`), and revokes access tokens (`revoke_access_tokens`) to see the provider fetch anew.
"""
import asyncio
import re
import secrets
import socket
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.waiting import eventually

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TTL = re.compile(r"^\d+(\.\d{1,9})?s$")


def service_account(client_email: str = "parley-push@parley-test.iam.gserviceaccount.com") -> tuple[bytes, rsa.RSAPublicKey]:
    """A service-account key file (JSON, as Google's console hands one out) with a key made now,
    and the public half the stand-in checks assertions with."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    document = {
        "type": "service_account",
        "project_id": "parley-test",
        "private_key_id": "k-" + secrets.token_hex(8),
        "private_key": pem.decode(),
        "client_email": client_email,
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    return orjson.dumps(document), key.public_key()


@dataclass(frozen=True)
class Answer:
    """A scripted answer: status, JSON body, headers."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def fcm_error(status: int, rpc_status: str, error_code: str | None = None, message: str = "",
              field_name: str | None = None, headers: dict[str, str] | None = None) -> Answer:
    """An error as FCM answers one: google.rpc.Status with an FcmError detail (and a BadRequest
    naming the field, for INVALID_ARGUMENT)."""
    details: list[dict[str, Any]] = []
    if error_code:
        details.append({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code})
    if field_name:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": field_name, "description": message}]})
    error = {"code": status, "message": message or rpc_status, "status": rpc_status, "details": details}
    return Answer(status, {"error": error}, headers or {})


@dataclass(frozen=True)
class Received:
    """A `messages:send` the stand-in accepted: the project, the access token, the body."""

    project_id: str
    access_token: str
    body: dict[str, Any]

    @property
    def message(self) -> dict[str, Any]:
        return dict(self.body["message"])


class FcmStandin:
    def __init__(self, *, project_id: str, client_email: str, public_key: rsa.RSAPublicKey, expires_in: int = 3599):
        self.project_id = project_id
        self.client_email = client_email
        self.public_key = public_key
        self.expires_in = expires_in
        self.url = ""  # set once listening
        self.assertions: list[dict[str, Any]] = []  # the claims of each accepted assertion
        self.received: list[Received] = []
        self.unauthenticated = 0  # sends refused for their access token
        self.token_answers: list[Answer] = []  # answered (in order) instead of issuing a token
        self._answers: dict[str, list[Answer]] = {}
        self._access_tokens: set[str] = set()
        self.app = Starlette(routes=[
            Route("/token", self._token, methods=["POST"]),
            Route("/v1/projects/{project}/messages:send", self._send, methods=["POST"]),
        ])

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def answer(self, device_token: str, *answers: Answer) -> None:
        """Answer the next sends to `device_token` with these, in order (then 200 again)."""
        self._answers.setdefault(device_token, []).extend(answers)

    def revoke_access_tokens(self) -> None:
        """Every access token given out so far is refused from now on (401 UNAUTHENTICATED)."""
        self._access_tokens.clear()

    async def _token(self, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return _json(400, {"error": "invalid_request", "error_description": "form body expected"})
        form = urllib.parse.parse_qs((await request.body()).decode())
        grant, assertion = form.get("grant_type", [""])[0], form.get("assertion", [""])[0]
        if grant != GRANT_TYPE:
            return _json(400, {"error": "unsupported_grant_type", "error_description": grant})
        try:
            if jwt.get_unverified_header(assertion).get("alg") != "RS256":
                raise jwt.InvalidTokenError("alg must be RS256")
            claims = jwt.decode(assertion, self.public_key, algorithms=["RS256"], audience=self.token_url,
                                issuer=self.client_email, options={"require": ["iss", "aud", "iat", "exp", "scope"]})
            if SCOPE not in str(claims["scope"]).split():
                raise jwt.InvalidTokenError(f"scope {claims['scope']!r} lacks {SCOPE}")
            if claims["exp"] - claims["iat"] > 3600:
                raise jwt.InvalidTokenError("an assertion lives an hour at most")
        except jwt.InvalidTokenError as exc:
            return _json(400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"})
        self.assertions.append(claims)
        if self.token_answers:
            scripted = self.token_answers.pop(0)
            return _json(scripted.status, scripted.body, scripted.headers)
        token = "ya29.standin-" + secrets.token_urlsafe(24)
        self._access_tokens.add(token)
        return _json(200, {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"})

    async def _send(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self._access_tokens:
            self.unauthenticated += 1
            return _json(401, fcm_error(401, "UNAUTHENTICATED", message="Request had invalid authentication "
                                        "credentials. Expected OAuth 2 access token.").body)
        project = request.path_params["project"]
        if project != self.project_id:
            return _json(404, fcm_error(404, "NOT_FOUND", message="Requested entity was not found.").body)
        try:
            body = orjson.loads(await request.body())
            message = body["message"]
            device = message["token"]
            _check(message)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return _json(400, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", f"Invalid message: {exc}").body)
        self.received.append(Received(project, token, body))
        queued = self._answers.get(device)
        if queued:
            scripted = queued.pop(0)
            return _json(scripted.status, scripted.body, scripted.headers)
        return _json(200, {"name": f"projects/{project}/messages/0:{len(self.received)}%standin"})


def _check(message: Any) -> None:
    """The parts of FCM's `Message` the provider uses, as the API documents them."""
    if not isinstance(message, dict) or not isinstance(message.get("token"), str) or not message["token"]:
        raise ValueError("message.token must be a non-empty string")
    data = message.get("data", {})
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError("message.data values must be strings")
    android = message.get("android", {})
    if android.get("priority", "NORMAL") not in ("NORMAL", "HIGH"):
        raise ValueError(f"android.priority {android.get('priority')!r}")
    if "ttl" in android and not TTL.match(str(android["ttl"])):
        raise ValueError(f"android.ttl {android['ttl']!r} is not a duration")


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


@asynccontextmanager
async def fcm_standin(**options: Any) -> AsyncIterator[FcmStandin]:
    """A running stand-in on a port of its own; stopped on leaving."""
    standin = FcmStandin(**options)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    standin.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(standin.app, lifespan="off", log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        await eventually(lambda: server.started or task.done(), "the FCM stand-in started")
        if task.done():
            task.result()
            raise AssertionError("the FCM stand-in stopped before it started")
        yield standin
    finally:
        server.should_exit = True
        await task
        listener.close()
