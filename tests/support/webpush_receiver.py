"""A Web Push push service on 127.0.0.1 for tests, checking what a browser's push service checks
and reading what only the browser could: it hands out subscriptions as `PushManager.subscribe`
would (an endpoint on itself, `p256dh` and `auth` from a fresh P-256 key pair and auth secret
whose private halves it keeps), takes RFC 8030 POSTs, verifies the RFC 8292 VAPID header (an
ES256 JWT under the given `k`, `aud` its own origin, `exp` ahead but not more than 24 h, a `sub`),
decrypts the RFC 8291 body, and records each delivery: its TTL, Urgency and Topic headers and
the notification's JSON.

Tests can make it answer a status for a subscription (410, 429 with Retry-After, ...) or stall
(hold requests until released). It serves on the event loop it was started on: a unit test's,
or an integration test's beside a stack (the push service's processes POST to its endpoints
like to any push service; http on loopback is what the Web Push provider accepts besides https).

    async with WebPushReceiver() as receiver:
        subscription = receiver.new_subscription()
        await client.call("push.subscribe", subscription.subscribe_request())
        ...
        await eventually(lambda: receiver.notifications(subscription), "a push")
"""
import asyncio
import base64
import contextlib
import dataclasses
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import h11
import http_ece  # type: ignore[import-untyped]
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.push.domain.ports import Subscription

MAX_BODY = 4096  # RFC 8030 7.2: what every push service takes; more is refused with 413
MAX_READ = 64 * 1024  # a request bigger than this is not read to its end (the connection closes)
MAX_EXP_SECONDS = 24 * 3600  # RFC 8292 2
URGENCIES = {"very-low", "low", "normal", "high"}
TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class ReceiverSubscription:
    """What a browser's `PushSubscription` holds (`endpoint`, `p256dh`, `auth`), with the private
    halves the browser keeps to itself. `application_server_key`: the VAPID key it was made
    for (RFC 8292 4: a restricted subscription takes messages signed by that key only)."""

    id: str
    endpoint: str
    p256dh: str
    auth: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    auth_secret: bytes = field(repr=False)
    application_server_key: str | None = None

    def subscribe_request(self, locale: str = "en") -> dict[str, Any]:
        """The `push.subscribe` request a web client sends with this subscription."""
        return {"kind": "webpush", "endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth},
                "locale": locale}

    def as_subscription(self, user_id: str, device_id: str, locale: str = "en") -> Subscription:
        """The push service's record of it (services/push/domain/ports.py), for unit tests."""
        return Subscription(user_id=user_id, device_id=device_id, kind="webpush", endpoint=self.endpoint,
                            p256dh=self.p256dh, auth=self.auth, locale=locale)


@dataclass(frozen=True)
class Delivery:
    """One request that passed every check, and the status it was answered with (201 unless a
    test said otherwise)."""

    subscription_id: str
    status: int
    ttl: int
    urgency: str | None
    topic: str | None
    notification: dict[str, Any]
    size: int  # of the encrypted body
    vapid_key: str  # the `k` of its Authorization
    token: str  # the JWT (`t`)
    claims: dict[str, Any]


@dataclass(frozen=True)
class Refusal:
    """A request refused as a push service would: what it was for, the status, and why."""

    subscription_id: str | None
    status: int
    reason: str


@dataclass
class _Answer:
    status: int
    retry_after: str | None
    times: int | None  # None: until cleared


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class WebPushReceiver:
    """The test push service. `deliveries`/`notifications` say what arrived, `refusals` what did
    not and why; `answer`, `stall` and `release` set how it behaves next."""

    def __init__(self, application_server_key: str | None = None, clock: Callable[[], float] = time.time) -> None:
        # Subscriptions made without a key of their own take this one (None: unrestricted).
        self.application_server_key = application_server_key
        self._clock = clock
        self._subscriptions: dict[str, ReceiverSubscription] = {}
        self._answers: dict[str, _Answer] = {}
        self.requests: list[Delivery] = []
        self.refusals: list[Refusal] = []
        self._stall_all = False
        self._stalled: set[str] = set()
        self._gate = asyncio.Event()
        self.held = 0  # requests waiting for `release`
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._port = 0

    # --- life ---------------------------------------------------------------------------------
    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Stop listening and drop every connection (held requests with them)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def origin(self) -> str:
        assert self._port, "start() the receiver first"
        return f"http://127.0.0.1:{self._port}"

    # --- what tests set -----------------------------------------------------------------------
    def new_subscription(self, application_server_key: str | None = None) -> ReceiverSubscription:
        key = ec.generate_private_key(ec.SECP256R1())
        point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        secret = secrets.token_bytes(16)
        sid = secrets.token_urlsafe(12)
        subscription = ReceiverSubscription(
            id=sid, endpoint=f"{self.origin}/push/{sid}", p256dh=b64url(point), auth=b64url(secret),
            private_key=key, auth_secret=secret,
            application_server_key=application_server_key or self.application_server_key,
        )
        self._subscriptions[sid] = subscription
        return subscription

    def answer(self, subscription: ReceiverSubscription, status: int, *, retry_after: str | None = None,
               times: int | None = None) -> None:
        """Answer requests for `subscription` with `status` (after every check passed), `times`
        times or until `answer_normally`; `retry_after`: the Retry-After header to send with it."""
        self._answers[subscription.id] = _Answer(status, retry_after, times)

    def answer_normally(self, subscription: ReceiverSubscription) -> None:
        self._answers.pop(subscription.id, None)

    def stall(self, subscription: ReceiverSubscription | None = None) -> None:
        """Hold requests (for `subscription`, or all) unanswered until `release`."""
        if subscription is None:
            self._stall_all = True
        else:
            self._stalled.add(subscription.id)
        if self._gate.is_set():
            self._gate = asyncio.Event()

    def release(self) -> None:
        self._stall_all = False
        self._stalled.clear()
        self._gate.set()

    # --- what tests read ----------------------------------------------------------------------
    @property
    def deliveries(self) -> list[Delivery]:
        """The requests answered 201: what a browser would have been handed."""
        return [d for d in self.requests if d.status == 201]

    def notifications(self, subscription: ReceiverSubscription) -> list[dict[str, Any]]:
        """The notifications (decrypted JSON) delivered to `subscription`, oldest first."""
        return [d.notification for d in self.deliveries if d.subscription_id == subscription.id]

    # --- serving --------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        connection = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await self._read(connection, reader)
                if request is None:
                    return
                status, headers, body = await self._answer(*request)
                headers = [*headers, ("Content-Length", str(len(body))), ("Content-Type", "text/plain")]
                writer.write(connection.send(h11.Response(status_code=status, headers=headers)))
                writer.write(connection.send(h11.Data(data=body)))
                writer.write(connection.send(h11.EndOfMessage()))
                await writer.drain()
                if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                    return
                connection.start_next_cycle()
        except (ConnectionError, h11.ProtocolError):
            return
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _read(connection: h11.Connection, reader: asyncio.StreamReader) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_READ:
                    return None
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                return request, bytes(body)
            else:  # ConnectionClosed, PAUSED
                return None

    async def _answer(self, request: h11.Request, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        path = request.target.decode(errors="replace")
        sid = path.removeprefix("/push/") if path.startswith("/push/") else None
        subscription = self._subscriptions.get(sid or "")
        while self._stall_all or (sid is not None and sid in self._stalled):
            gate = self._gate
            self.held += 1
            try:
                await gate.wait()
            finally:
                self.held -= 1
        headers = {name.decode().lower(): value.decode(errors="replace") for name, value in request.headers}
        try:
            if request.method != b"POST":
                raise _Refused(405, "not a POST")
            if subscription is None:
                raise _Refused(404, f"no subscription at {path}")
            delivery = self._check(subscription, headers, body)
        except _Refused as refused:
            self.refusals.append(Refusal(sid, refused.status, refused.reason))
            return refused.status, [], refused.reason.encode()
        answer = self._answers.get(subscription.id)
        if answer is None:
            self.requests.append(delivery)
            return 201, [("Location", f"/message/{len(self.requests)}")], b""
        if answer.times is not None:
            answer.times -= 1
            if answer.times <= 0:
                self.answer_normally(subscription)
        self.requests.append(dataclasses.replace(delivery, status=answer.status))
        extra = [("Retry-After", answer.retry_after)] if answer.retry_after is not None else []
        return answer.status, extra, f"answered {answer.status} as told".encode()

    def _check(self, subscription: ReceiverSubscription, headers: dict[str, str], body: bytes) -> Delivery:
        """What a push service checks of a request, then what the browser reads of it."""
        key, token, claims = self._vapid(subscription, headers.get("authorization", ""))
        ttl = headers.get("ttl", "")
        if not ttl.isdigit():
            raise _Refused(400, f"TTL missing or not a number: {ttl!r}")
        urgency, topic = headers.get("urgency"), headers.get("topic")
        if urgency is not None and urgency not in URGENCIES:
            raise _Refused(400, f"bad Urgency {urgency!r}")
        if topic is not None and not TOPIC.fullmatch(topic):
            raise _Refused(400, f"bad Topic {topic!r}")
        if len(body) > MAX_BODY:
            raise _Refused(413, f"{len(body)} bytes, more than {MAX_BODY}")
        if headers.get("content-encoding") != "aes128gcm":
            raise _Refused(415, f"Content-Encoding {headers.get('content-encoding')!r}, not aes128gcm")
        if len(body) < 21 or len(body) - 21 - body[20] > int.from_bytes(body[16:20], "big"):
            raise _Refused(400, "not a single aes128gcm record")  # RFC 8291 4
        try:
            plain = http_ece.decrypt(body, private_key=subscription.private_key,
                                     auth_secret=subscription.auth_secret, version="aes128gcm")
            notification = orjson.loads(plain)
        except (http_ece.ECEException, ValueError) as exc:
            raise _Refused(400, f"could not decrypt the payload: {exc!r}") from exc
        return Delivery(subscription.id, 201, int(ttl), urgency, topic, notification, len(body), key, token, claims)

    def _vapid(self, subscription: ReceiverSubscription, authorization: str) -> tuple[str, str, dict[str, Any]]:
        scheme, _, rest = authorization.partition(" ")
        if scheme.lower() != "vapid":
            raise _Refused(401, f"no vapid Authorization: {authorization[:40]!r}")
        params = dict(p.strip().partition("=")[::2] for p in rest.split(","))
        token, key = params.get("t", ""), params.get("k", "")
        if subscription.application_server_key is not None and key != subscription.application_server_key:
            raise _Refused(403, "the VAPID key is not the one the subscription was made for")
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
            claims: dict[str, Any] = jwt.decode(
                token, public, algorithms=["ES256"], audience=self.origin,
                options={"require": ["aud", "exp", "sub"], "verify_exp": False},
            )
        except (ValueError, jwt.InvalidTokenError) as exc:
            raise _Refused(403, f"VAPID token refused: {exc!r}") from exc
        now = self._clock()
        if not now < claims["exp"] <= now + MAX_EXP_SECONDS + 60:
            raise _Refused(403, f"VAPID exp {claims['exp']} is not within 24 h from {int(now)}")
        if not str(claims["sub"]).startswith(("mailto:", "https:")):
            raise _Refused(403, f"VAPID sub {claims['sub']!r} is neither mailto: nor https:")
        return key, token, claims
