"""The client library (clients/python, `parley_client`) and its command line, against the
session's stack: what a bot or a script relies on.

Login, resume and logout; messages once each however often they arrive; the acknowledged
prefix not coming again; history; files up and down; the error type; a lost socket replaced
by one to the other gateway, resumed and synced, with a send going through meanwhile; and
`parley send / history / listen` as a person runs them.
"""
import asyncio
import hashlib
import io
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from parley_client import Attempt, GatewayUnreachable, Message, ParleyClient, Recipient, ReplyError

from deploy.local.devstack import free_port
from tests.support.waiting import eventually

PASSWORD = "correct horse battery"
PARLEY = Path(sys.executable).parent / "parley"  # the console script `make venv` installs


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


async def user(port: int | list[int], device_id: str | None = None, **options: Any) -> ParleyClient:
    """A registered, logged-in client whose first sync is done."""
    ports = port if isinstance(port, list) else [port]
    client = ParleyClient([url(p) for p in ports], **options)
    name = f"lib_{secrets.token_hex(5)}"
    await client.register(name, PASSWORD)
    await client.login(name, PASSWORD, device_id)
    await client.wait_synced()
    return client


async def befriend(a: ParleyClient, b: ParleyClient) -> None:
    await a.call("friends.request", {"user_id": b.user_id})
    await b.call("friends.accept", {"user_id": a.user_id})


async def next_message(stream: AsyncIterator[Message], timeout: float = 10) -> Message:
    return await asyncio.wait_for(anext(stream), timeout)


async def test_login_resume_and_logout(port: int, other_port: int) -> None:
    alice = await user(port, device_id="phone")
    assert alice.token and alice.username and alice.ready.is_set()
    tablet = ParleyClient(url(other_port))
    resumed = await tablet.resume(alice.token, "tablet")
    await tablet.wait_synced()
    assert resumed["user_id"] == alice.user_id and tablet.device_id == "tablet"

    token = alice.token
    await alice.logout()
    assert alice.token is None
    fresh = ParleyClient(url(port))
    with pytest.raises(ReplyError) as refused:
        await fresh.resume(token)
    assert refused.value.code == "unauthorized" and not refused.value.retryable
    # The token stops working everywhere: the other socket bound with it is closed, 4401.
    await eventually(lambda: not tablet.is_open, "the tablet's socket closed after the logout")
    assert tablet.connection is not None and tablet.connection.close_code == 4401
    for client in (alice, tablet, fresh):
        await client.close()


async def test_each_message_comes_once_however_often_it_is_pushed(port: int) -> None:
    alice, bob = await user(port), await user(port)
    await befriend(alice, bob)
    stream = bob.messages()
    cmid = secrets.token_hex(6)
    first = await alice.send({"user_id": bob.user_id or ""}, "hello", client_msg_id=cmid)
    # A send again with the same client_msg_id is answered with the first reply and pushes the
    # first message again (docs/protocol.md): the library drops it by (conversation, seq).
    again = await alice.send({"user_id": bob.user_id or ""}, "hello", client_msg_id=cmid)
    assert (again["seq"], again["message_id"]) == (first["seq"], first["message_id"])
    got = await next_message(stream)
    assert (got["text"], got["seq"], got["from_user_id"]) == ("hello", first["seq"], alice.user_id)
    await eventually(lambda: bob.inbox.duplicates == 1, "the retry's second push dropped as a duplicate")
    await alice.send({"user_id": bob.user_id or ""}, "after")
    assert (await next_message(stream))["text"] == "after"  # the duplicate was never yielded
    assert bob.reply_target(got) == {"user_id": alice.user_id}
    for client in (alice, bob):
        await client.close()


async def test_acks_cover_the_unbroken_run_and_it_does_not_come_again(port: int) -> None:
    alice, bob = await user(port), await user(port, device_id="phone")
    await befriend(alice, bob)
    await bob.close()  # offline: what alice sends waits above the phone's cursor
    sent = [await alice.send({"user_id": bob.user_id or ""}, f"m{i}") for i in range(3)]
    conversation_id = sent[0]["conversation_id"]

    phone = ParleyClient(url(port))
    await phone.login(bob.username or "", PASSWORD, "phone")
    assert (await phone.next_push("sync.done"))["count"] == 3
    assert phone.inbox.ack_targets() == {conversation_id: 3}
    assert await phone.ack() == 1 and phone.inbox.ack_targets() == {}
    # Alice's own sends count as held on her side: her run reaches 3 without a push.
    assert alice.inbox.ack_targets() == {conversation_id: 3}
    await phone.close()

    again = ParleyClient(url(port), ack_interval=0.1)
    await again.login(bob.username or "", PASSWORD, "phone")
    assert (await again.next_push("sync.done"))["count"] == 0  # acknowledged: not pushed again
    await alice.send({"user_id": bob.user_id or ""}, "m3")
    await eventually(lambda: again.stats.acks_sent == 1, "the periodic ack of the live message")
    for client in (alice, again):
        await client.close()


async def test_history_pages_and_all_of_it(port: int) -> None:
    alice, bob = await user(port), await user(port)
    await befriend(alice, bob)
    sent = [await alice.send({"user_id": bob.user_id or ""}, f"h{i}") for i in range(5)]
    conversation_id = sent[0]["conversation_id"]
    page = await bob.history(conversation_id, limit=2)
    assert [m["seq"] for m in page["messages"]] == [4, 5] and page["has_more"]
    older = await bob.history(conversation_id, before_seq=4, limit=10)
    assert [m["text"] for m in older["messages"]] == ["h0", "h1", "h2"] and not older["has_more"]
    assert [m["text"] for m in await bob.history_all(conversation_id)] == [f"h{i}" for i in range(5)]
    for client in (alice, bob):
        await client.close()


async def test_files_up_and_down(port: int, tmp_path: Path) -> None:
    alice, bob, carol = await user(port), await user(port), await user(port)
    await befriend(alice, bob)
    body = os.urandom(700_000)  # several of the gateway's chunks
    stored = await alice.upload(body, "notes é.bin", "application/octet-stream")
    assert stored["name"] == "notes é.bin" and stored["size"] == len(body)
    assert stored["sha256"] == hashlib.sha256(body).hexdigest()
    assert await alice.download(stored["file_id"]) == body

    path = tmp_path / "report.txt"
    path.write_bytes(b"a file streamed from disk\n" * 1000)
    from_disk = await alice.upload(path, content_type="text/plain")
    assert from_disk["name"] == "report.txt" and from_disk["size"] == path.stat().st_size

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(4):
            yield bytes([i]) * 10_000

    streamed = await alice.upload(pieces(), "pieces.bin")
    assert streamed["size"] == 40_000

    # Bob may download once a message carries it; carol never: the same 404 as no such file.
    with pytest.raises(ReplyError) as hidden:
        await bob.download(stored["file_id"])
    assert (hidden.value.code, hidden.value.status) == ("not_found", 404)
    await alice.send({"user_id": bob.user_id or ""}, file_id=stored["file_id"])
    into = io.BytesIO()
    assert await bob.download(stored["file_id"], into) == b"" and into.getvalue() == body
    with pytest.raises(ReplyError) as refused:
        await carol.download(stored["file_id"])
    assert refused.value.status == 404
    for client in (alice, bob, carol):
        await client.close()


async def test_errors_are_typed_and_only_unavailable_is_retried(port: int) -> None:
    alice, stranger = await user(port), await user(port)
    with pytest.raises(ReplyError) as own:
        await alice.call("friends.request", {"user_id": alice.user_id})
    assert own.value.code == "bad_request" and own.value.message and str(own.value).startswith("bad_request: ")
    tries: list[Attempt] = []
    with pytest.raises(ReplyError) as refused:
        await alice.send({"user_id": stranger.user_id or ""}, "hi", on_attempt=tries.append)
    assert refused.value.code == "forbidden" and [t.outcome for t in tries] == ["forbidden"]  # final: tried once
    assert alice.outbox == {}
    with pytest.raises(GatewayUnreachable) as unreachable:
        await ParleyClient(url(free_port())).connect()
    assert isinstance(unreachable.value, ConnectionError)
    for client in (alice, stranger):
        await client.close()


async def test_a_lost_socket_is_replaced_on_the_other_gateway(port: int, other_port: int) -> None:
    alice = await user([port, other_port], reconnect=True)
    bob = await user(port)
    await befriend(alice, bob)
    stream = alice.messages()
    assert alice.connection is not None and alice.gateway.http_url == url(port)

    alice.connection.abort()  # the network drops (no close frame): what a gateway crash looks like here
    sent = await bob.send({"user_id": alice.user_id or ""}, "while you were away")
    await eventually(lambda: alice.ready.is_set() and alice.gateway.http_url == url(other_port),
                     "alice bound and synced again, on the second gateway")
    assert alice.stats.reconnects == 1 and alice.stats.close_codes == {"1006": 1}
    got = await next_message(stream)
    assert (got["text"], got["seq"]) == ("while you were away", sent["seq"])  # live or by the resume's sync: once

    # A send made while the socket is away waits for the next one (same client_msg_id throughout).
    assert alice.connection is not None
    alice.connection.abort()
    tries: list[Attempt] = []
    reply = await alice.send({"user_id": bob.user_id or ""}, "back again", on_attempt=tries.append)
    assert tries[-1].outcome == "ok" and alice.stats.reconnects == 2
    assert alice.gateway.http_url == url(port)
    assert [m["text"] for m in await bob.history_all(reply["conversation_id"])] == ["while you were away", "back again"]
    for client in (alice, bob):
        await client.close()


# --- the command line ---------------------------------------------------------------------------
def env(username: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "PARLEY_URL"}
    return {**out, "PARLEY_USERNAME": username, "PARLEY_PASSWORD": PASSWORD}


async def parley(port: int, username: str, *argv: str, timeout: float = 60) -> tuple[int, str, str]:
    """Run `parley --url ... ARGV` as `username`: (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(str(PARLEY), "--url", url(port), *argv, env=env(username),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_command_line_sends_lists_history_and_listens(port: int) -> None:
    alice = await user(port)
    bob_name = f"cli_{secrets.token_hex(4)}"
    status, out, _ = await parley(port, bob_name, "register")
    assert status == 0 and f"registered {bob_name}" in out
    assert (await parley(port, bob_name, "friend", alice.username or ""))[0] == 0
    bob = {"user_id": (await alice.next_push("friend.request"))["user"]["user_id"]}
    await alice.call("friends.accept", bob)

    status, out, err = await parley(port, bob_name, "send", "--to", alice.username or "", "hello from the cli")
    assert status == 0, err
    assert out.startswith("sent (conversation d_") and out.rstrip().endswith("seq 1)")
    assert (await alice.next_push("message.new"))["text"] == "hello from the cli"
    await alice.send(cast(Recipient, bob), "and back")

    status, out, err = await parley(port, bob_name, "history", "--with", alice.username or "")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].endswith(f"  {bob_name}: hello from the cli") and lines[1].endswith(f"  {alice.username}: and back")

    # listen: what this device has not acknowledged (the sync: bob's own message from the other
    # device too), then live messages; each printed once, and acknowledged.
    listen = await asyncio.create_subprocess_exec(str(PARLEY), "--url", url(port), "listen", "--count", "3",
                                                  "--seconds", "60", env=env(bob_name),
                                                  stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert listen.stderr is not None
        ready = await asyncio.wait_for(listen.stderr.readline(), 30)
        assert ready.decode().startswith(f"listening as {bob_name}")
        await alice.send(cast(Recipient, bob), "live one")
        out_bytes, _ = await asyncio.wait_for(listen.communicate(), 30)
    finally:
        if listen.returncode is None:
            listen.kill()
            await listen.wait()
    assert listen.returncode == 0
    shown = out_bytes.decode().splitlines()
    assert [line.split(": ", 1)[1] for line in shown] == ["hello from the cli", "and back", "live one"]
    # Acknowledged: the listening device ("cli") is not given them again.
    status, out, _ = await parley(port, bob_name, "listen", "--seconds", "1")
    assert status == 0 and out == ""
    # Ctrl-C ends a listen quietly. (A shell starts background jobs with SIGINT ignored, and the
    # child would inherit that from a suite run in the background: give it a terminal's default.)
    listen = await asyncio.create_subprocess_exec(str(PARLEY), "--url", url(port), "listen", env=env(bob_name),
                                                  stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert listen.stderr is not None
        assert (await asyncio.wait_for(listen.stderr.readline(), 30)).startswith(b"listening as")
        listen.send_signal(signal.SIGINT)
        out_bytes, err_bytes = await asyncio.wait_for(listen.communicate(), 30)
    finally:
        if listen.returncode is None:
            listen.kill()
            await listen.wait()
    assert listen.returncode == 0 and out_bytes == b"" and b"Traceback" not in err_bytes
    await alice.close()


async def test_the_command_line_says_what_is_wrong(port: int) -> None:
    nowhere = free_port()
    status, _, err = await parley(nowhere, "someone", "send", "--to", "bob", "hi")
    assert status == 3
    assert f"cannot reach the gateway at http://127.0.0.1:{nowhere}: is `make run` running?" in err
    status, _, err = await parley(port, f"nobody_{secrets.token_hex(4)}", "history", "--with", "bob")
    assert status == 1 and "wrong username or password" in err
    proc = await asyncio.create_subprocess_exec(str(PARLEY), "send", "--to", "bob", "hi",
                                                env={k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")},
                                                stderr=asyncio.subprocess.PIPE)
    _, err_bytes = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and "no username: pass --username or set PARLEY_USERNAME" in err_bytes.decode()
