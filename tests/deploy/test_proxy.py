"""deploy/proxy/nginx.conf at work, where nginx is installed: the real file (only its container
specifics changed: tests/deploy/support.py runnable_nginx_conf) in front of a stand-in gateway
that reports what reached it and when. A WebSocket is upgraded through it with the browser's
Host; an upload reaches the gateway while the client is still sending it, and a download reaches
the client while the gateway is still sending it (nothing buffered whole); an upload above the
limit is refused by the proxy itself.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from websockets.sync.client import connect as ws_connect

from shared.settings import Settings
from tests.deploy.conftest import skip_for_missing
from tests.deploy.support import runnable_nginx_conf

PIECE = 256 * 1024
MIB = 1024 * 1024
DOWNLOAD_MIB = 64
WAIT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


@dataclass
class StandIn:
    """A gateway stand-in (raw ASGI on uvicorn) and what it saw."""

    upload_started: threading.Event = field(default_factory=threading.Event)
    download_sent: threading.Event = field(default_factory=threading.Event)

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        headers = {k.decode(): v.decode() for k, v in scope.get("headers", [])}
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": json.dumps({"host": headers.get("host")})})
            while (message := await receive())["type"] == "websocket.receive":
                await send({"type": "websocket.send", "text": message.get("text") or ""})
            return
        if scope["type"] != "http":
            return
        if scope["path"] == "/files" and scope["method"] == "POST":
            size = 0
            while True:
                message = await receive()
                size += len(message.get("body", b""))
                if size:
                    self.upload_started.set()
                if not message.get("more_body"):
                    break
            await self.respond(send, 201, {"size": size})
        elif scope["path"] == "/files/f1":
            # As fast as the connection takes it: uvicorn waits while its socket is full.
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
            for _ in range(DOWNLOAD_MIB):
                await send({"type": "http.response.body", "body": b"d" * MIB, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            self.download_sent.set()
        else:
            await self.respond(send, 200, {"status": "alive", "host": headers.get("host")})

    @staticmethod
    async def respond(send, status: int, body: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})


@dataclass
class Proxied:
    url: str
    port: int
    gateway: StandIn


@pytest.fixture(scope="module")
def proxied() -> Iterator[Proxied]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        skip_for_missing(
            "nginx",
            "deploy/proxy/nginx.conf was checked by structure only, not by nginx. "
            "`sudo apt-get install --no-install-recommends nginx-light` runs `nginx -t` and the proxy tests too.",
        )
    stand_in = StandIn()
    upstream_port, proxy_port = free_port(), free_port()
    server = uvicorn.Server(uvicorn.Config(stand_in, host="127.0.0.1", port=upstream_port, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory() as directory:
            os.chmod(directory, 0o755)  # nginx's workers may run as another user
            conf = runnable_nginx_conf(Path(directory), listen=proxy_port, upstream=f"http://127.0.0.1:{upstream_port}")
            with open(Path(directory) / "nginx.log", "w") as log:
                process = subprocess.Popen(  # a process group of its own: its workers go with it (stop)
                    [nginx, "-e", "stderr", "-p", directory, "-c", str(conf), "-g", "daemon off;"],
                    stdout=log, stderr=log, start_new_session=True,
                )
                try:
                    deadline = time.monotonic() + 15
                    wait_for_port(upstream_port, deadline)
                    wait_for_port(proxy_port, deadline)
                    yield Proxied(f"http://127.0.0.1:{proxy_port}", proxy_port, stand_in)
                finally:
                    stop(process)
                    print((Path(directory) / "nginx.log").read_text())
    finally:  # the stand-in stops even when nginx could not be set up or started
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive(), "the stand-in gateway did not stop"


def stop(process: subprocess.Popen[bytes]) -> None:
    """nginx ended, master and workers: SIGTERM (its fast shutdown), else SIGKILL to its group."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.fixture(autouse=True)
def _fresh_observations(proxied: Proxied) -> None:
    """What the stand-in saw is each test's own: an upload or a download of an earlier test
    does not count for a later one."""
    proxied.gateway.upload_started = threading.Event()
    proxied.gateway.download_sent = threading.Event()


def test_plain_requests_reach_a_gateway_with_the_browsers_host(proxied: Proxied) -> None:
    response = httpx.get(f"{proxied.url}/healthz", timeout=WAIT)
    assert response.status_code == 200
    # With its port: the gateway names it in the page's Content-Security-Policy (connect-src).
    assert response.json()["host"] == f"127.0.0.1:{proxied.port}"


def test_websockets_are_upgraded_through_the_proxy(proxied: Proxied) -> None:
    with ws_connect(f"ws://127.0.0.1:{proxied.port}/ws", open_timeout=WAIT) as ws:
        assert json.loads(ws.recv(timeout=WAIT))["host"] == f"127.0.0.1:{proxied.port}"
        for text in ("hello", "again"):
            ws.send(text)
            assert ws.recv(timeout=WAIT) == text


def test_uploads_are_streamed_to_the_gateway(proxied: Proxied) -> None:
    reached_gateway_while_sending: list[bool] = []

    def body() -> Iterator[bytes]:
        yield b"x" * PIECE
        # A proxy that buffered the request would pass nothing on before the end of the body.
        reached_gateway_while_sending.append(proxied.gateway.upload_started.wait(WAIT))
        for _ in range(8):
            yield b"x" * PIECE

    response = httpx.post(f"{proxied.url}/files", content=body(), timeout=30)
    assert response.status_code == 201, response.text
    # 2.25 MiB: above the 1 MiB the proxy allows outside /files.
    assert response.json() == {"size": 9 * PIECE}
    assert reached_gateway_while_sending == [True], "the proxy buffered the upload"


def test_downloads_are_streamed_to_the_client(proxied: Proxied) -> None:
    """A client that stops reading holds the gateway back: the proxy does not take the whole file
    off the gateway into its memory or onto its disk (what proxy_buffering on would do)."""
    received = 0
    with httpx.stream("GET", f"{proxied.url}/files/f1", timeout=30) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            if received == 0:
                # Far more than the sockets between here and the gateway can hold.
                assert not proxied.gateway.download_sent.wait(2), "the proxy took the whole download while the client read nothing"
            received += len(chunk)
    assert received == DOWNLOAD_MIB * MIB
    # Set by the gateway's thread just after its last write: it may come a moment after the bytes.
    assert proxied.gateway.download_sent.wait(WAIT), "the gateway did not finish sending"


def test_uploads_above_the_limit_are_refused_by_the_proxy(proxied: Proxied) -> None:
    limit = Settings.model_fields["max_upload_bytes"].default
    with socket.create_connection(("127.0.0.1", proxied.port), timeout=WAIT) as s:
        s.sendall(
            f"POST /files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {limit + 1}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        status_line = s.recv(1024).split(b"\r\n", 1)[0]
    assert b" 413 " in status_line, status_line
