"""A stand-in for APNs' provider API (token-based, HTTP/2 over TLS) on 127.0.0.1, for tests of
services/push/providers/apns.py: Apple cannot be reached from here.

A small asyncio server speaks HTTP/2 only (h2; ALPN "h2", as APNs), over TLS with a
certificate made at start (`client_ssl` trusts it). It holds the provider to the documented
API: `POST /3/device/<hex token>` with `authorization: bearer <JWT>` (ES256, `kid` the key id,
`iss` the team id, `iat` at most an hour old), `apns-topic` the app's bundle id,
`apns-push-type`, `apns-priority` (5 or 10; 5 for background), `apns-expiration`, an
`apns-collapse-id` of 64 bytes at most, a JSON payload with `aps` of 4096 bytes at most. It
answers errors with `{"reason": ...}` as APNs does, records what it accepted, and takes scripted
answers per device token (`answer`); `expire_provider_tokens` makes the JWTs seen so far
answered 403 ExpiredProviderToken.
"""
import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import jwt
import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PUSH_TYPES = {"alert", "background", "voip", "complication", "fileprovider", "mdm", "location", "liveactivity"}


def signing_key() -> tuple[bytes, ec.EllipticCurvePublicKey]:
    """An APNs auth key as Apple hands one out (a .p8: PKCS#8 PEM, P-256), made now, and its
    public half the stand-in checks provider tokens with."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem, key.public_key()


@dataclass(frozen=True)
class Answer:
    """A scripted answer: status, `reason` (the error body), headers."""

    status: int
    reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """A push the stand-in accepted (before any scripted answer)."""

    device_token: str
    headers: dict[str, str]
    payload: dict[str, Any]
    provider_token: str
    claims: dict[str, Any]


class ApnsStandin:
    def __init__(self, *, public_key: ec.EllipticCurvePublicKey, key_id: str, team_id: str, topic: str):
        self.public_key = public_key
        self.key_id = key_id
        self.team_id = team_id
        self.topic = topic
        self.url = ""  # set once listening
        self.client_ssl: ssl.SSLContext | None = None  # trusts the stand-in's certificate
        self.requests: list[Request] = []
        self.refused: list[tuple[int, str]] = []  # (status, reason) of what the checks refused
        self.provider_tokens: list[str] = []  # each distinct JWT, in the order first seen
        self.expired: set[str] = set()
        self._answers: dict[str, list[Answer]] = {}

    def answer(self, device_token: str, *answers: Answer) -> None:
        """Answer the next pushes to `device_token` with these, in order (then 200 again)."""
        self._answers.setdefault(device_token, []).extend(answers)

    def expire_provider_tokens(self) -> None:
        """The JWTs seen so far are answered 403 ExpiredProviderToken from now on."""
        self.expired.update(self.provider_tokens)

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """One request: the status, headers and body APNs would answer."""
        status, reason = self._check(headers, body)
        if status != 200:
            self.refused.append((status, reason))
            return status, {"apns-id": headers.get("apns-id") or str(uuid.uuid4())}, orjson.dumps({"reason": reason})
        token = headers[":path"].removeprefix("/3/device/")
        queued = self._answers.get(token)
        if queued:
            scripted = queued.pop(0)
            error: dict[str, Any] = {"reason": scripted.reason} if scripted.reason else {}
            if scripted.status == 410:
                error["timestamp"] = int(time.time() * 1000)
            return scripted.status, dict(scripted.headers), orjson.dumps(error) if error else b""
        return 200, {"apns-id": headers.get("apns-id") or str(uuid.uuid4())}, b""

    def _check(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        if headers.get(":method") != "POST":
            return 405, "MethodNotAllowed"
        path = headers.get(":path", "")
        if not path.startswith("/3/device/"):
            return 404, "BadPath"
        token = path.removeprefix("/3/device/")
        scheme, _, bearer = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not bearer:
            return 403, "MissingProviderToken"
        try:
            header = jwt.get_unverified_header(bearer)
            if header.get("alg") != "ES256" or header.get("kid") != self.key_id:
                return 403, "InvalidProviderToken"
            claims = jwt.decode(bearer, self.public_key, algorithms=["ES256"], issuer=self.team_id,
                                options={"require": ["iss", "iat"]})
        except jwt.InvalidTokenError:
            return 403, "InvalidProviderToken"
        if bearer not in self.provider_tokens:
            self.provider_tokens.append(bearer)
        if bearer in self.expired or time.time() - claims["iat"] > 3600:
            return 403, "ExpiredProviderToken"
        if "apns-topic" not in headers:
            return 400, "MissingTopic"
        if headers["apns-topic"] != self.topic:
            return 400, "TopicDisallowed"
        push_type = headers.get("apns-push-type", "")
        if push_type not in PUSH_TYPES:
            return 400, "InvalidPushType"
        priority = headers.get("apns-priority", "10")
        if priority not in ("5", "10", "1") or (push_type == "background" and priority != "5"):
            return 400, "BadPriority"
        if not headers.get("apns-expiration", "0").isdigit():
            return 400, "BadExpirationDate"
        if len(headers.get("apns-collapse-id", "").encode()) > 64:
            return 400, "BadCollapseId"
        if not token or any(c not in "0123456789abcdefABCDEF" for c in token):
            return 400, "BadDeviceToken"
        if len(body) > 4096:
            return 413, "PayloadTooLarge"
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return 400, "PayloadEmpty"
        aps = payload.get("aps") if isinstance(payload, dict) else None
        if not isinstance(aps, dict):
            return 400, "PayloadEmpty"
        if push_type == "background" and (aps.get("content-available") != 1 or "alert" in aps):
            return 400, "PayloadEmpty"
        self.requests.append(Request(token, dict(headers), payload, bearer, claims))
        return 200, ""

    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: HTTP/2 frames in, a response per stream out."""
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        connection.initiate_connection()
        writer.write(connection.data_to_send())
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        try:
            while data := await reader.read(65536):
                for event in connection.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = ({_text(k): _text(v) for k, v in event.headers or []}, bytearray())
                    elif isinstance(event, h2.events.DataReceived) and event.stream_id in streams:
                        streams[event.stream_id][1].extend(event.data or b"")
                        connection.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded) and event.stream_id in streams:
                        headers, body = streams.pop(event.stream_id)
                        status, answer_headers, answer = self.handle(headers, bytes(body))
                        response = [(":status", str(status)), *answer_headers.items(),
                                    ("content-length", str(len(answer)))]
                        connection.send_headers(event.stream_id, response, end_stream=not answer)
                        if answer:
                            connection.send_data(event.stream_id, answer, end_stream=True)
                    elif isinstance(event, h2.events.StreamReset):
                        streams.pop(event.stream_id or 0, None)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                writer.write(connection.data_to_send())
                await writer.drain()
        except (ConnectionError, ssl.SSLError, h2.exceptions.ProtocolError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _certificate() -> tuple[bytes, bytes]:
    """A self-signed certificate for 127.0.0.1 (PEM) and its key (PEM), made now."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "apns-standin")])
    now = datetime.datetime.now(datetime.timezone.utc)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@asynccontextmanager
async def apns_standin(**options: Any) -> AsyncIterator[ApnsStandin]:
    """A running stand-in on a port of its own, over TLS with a fresh certificate; stopped (its
    connections closed) on leaving."""
    standin = ApnsStandin(**options)
    cert_pem, key_pem = _certificate()
    server_ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "cert.pem").write_bytes(cert_pem)
        (Path(directory) / "key.pem").write_bytes(key_pem)
        server_ssl.load_cert_chain(Path(directory) / "cert.pem", Path(directory) / "key.pem")
    server_ssl.set_alpn_protocols(["h2"])
    standin.client_ssl = ssl.create_default_context(cadata=cert_pem.decode())
    connections: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await standin.serve_connection(reader, writer)
        except asyncio.CancelledError:
            pass  # the stand-in stops: this connection's task ends here, quietly
        finally:
            connections.discard(task)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ssl)
    standin.url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield standin
    finally:
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()
