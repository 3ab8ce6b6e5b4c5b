"""End-to-end encrypted direct conversations with the Python client (parley_client.e2e, issue 28
step one, docs/security.md) against the session's stack.

Alice (two devices) and Bob talk encrypted while the test reads every MongoDB collection and
every body on the broker's exchanges: no text, no file bytes, no file name. A tampered or
replayed ciphertext comes out as `e2e.error`, never as a message. A device of Bob's added later
reads the earlier messages only once another of his devices shares them. The safety number is
the same on both sides and changes when Bob's keys do, and Alice's client says so.
"""
import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from parley_client import ParleyClient

from shared.broker import Names
from shared.settings import Settings
from tests.support.stored import database_dump
from tests.support.waiting import eventually

PASSWORD = "correct horse battery"
pytestmark = pytest.mark.timeout(240)


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


async def device(port: int, username: str, device_id: str, store: Path, register: bool = False,
                 pickle_key: bytes | None = None) -> ParleyClient:
    """A logged-in, synced client with end-to-end encryption on (its store in `store`, sealed
    with `pickle_key` or a key kept beside it)."""
    client = ParleyClient(url(port), request_timeout=20)
    if register:
        await client.register(username, PASSWORD)
    await client.e2e.enable(store, pickle_key)
    await client.login(username, PASSWORD, device_id)
    await client.wait_synced()
    await eventually(lambda: client.e2e.device is not None and client.e2e._ready.is_set(), "e2e set up")
    return client


async def befriend(a: ParleyClient, b: ParleyClient) -> None:
    await a.call("friends.request", {"user_id": b.user_id})
    await b.call("friends.accept", {"user_id": a.user_id})


async def next_of(client: ParleyClient, kind: str, match: Any = None, timeout: float = 15) -> dict[str, Any]:
    """The next queued push of `kind` (for which `match(data)` holds), skipping others."""
    async with asyncio.timeout(timeout):
        while True:
            data = await client.next_push(kind, timeout)
            if match is None or match(data):
                return data


class Recorder:
    """Every body published on the stack's exchanges (commands, events, and deliveries to both
    gateways) while it runs: a queue of our own bound with '#' (and each gateway's key)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.bodies.append(message.body)


@pytest.fixture
async def broker_traffic(settings: Settings, port: int, other_port: int) -> AsyncIterator[Recorder]:
    recorder = Recorder()
    names = Names(settings.namespace)
    gateway_ids = []
    async with httpx.AsyncClient() as http:
        for p in (port, other_port):
            gateway_ids.append((await http.get(f"{url(p)}/healthz")).json()["gateway_id"])
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(await channel.get_exchange(names.commands), "#")
        await queue.bind(await channel.get_exchange(names.events), "#")
        deliver = await channel.get_exchange(names.deliver)
        for gateway_id in gateway_ids:
            await queue.bind(deliver, gateway_id)
        await queue.consume(recorder.on_message, no_ack=True)
        yield recorder


async def test_alice_and_bob_talk_encrypted_and_nothing_in_clear_is_stored_or_carried(
        tmp_path: Path, port: int, other_port: int, settings: Settings, broker_traffic: Recorder) -> None:
    alice_name, bob_name = f"e2e_a_{secrets.token_hex(4)}", f"e2e_b_{secrets.token_hex(4)}"
    alice = await device(port, alice_name, "phone", tmp_path / "alice-phone.e2e", register=True)
    laptop = await device(other_port, alice_name, "laptop", tmp_path / "alice-laptop.e2e",
                          pickle_key=secrets.token_bytes(32))
    bob = await device(port, bob_name, "phone", tmp_path / "bob-phone.e2e", register=True)
    assert alice.user_id and bob.user_id
    await befriend(alice, bob)
    conversation_id = await alice.e2e.encrypt_conversation(bob.user_id)
    encrypted = await next_of(bob, "conversation.encrypted")
    assert encrypted["conversation_id"] == conversation_id and encrypted["by_user_id"] == alice.user_id
    await eventually(lambda: bob.e2e.is_encrypted(alice.user_id or ""), "bob knows the conversation is encrypted")

    secret_text = f"the eagle lands at midnight {secrets.token_hex(6)}"
    sent = await alice.send({"user_id": bob.user_id}, secret_text)  # encrypted by itself: the conversation is
    got = await next_of(bob, "message.new")
    assert got["message_id"] == sent["message_id"] and got["text"] == secret_text and "encrypted" not in got
    assert got["e2e"]["sender_device_id"] == "phone" and not got["e2e"]["identity_changed"]
    on_laptop = await next_of(laptop, "message.new")  # my other device reads my message too
    assert on_laptop["text"] == secret_text and on_laptop["from_user_id"] == alice.user_id

    reply_text = f"roger, bring the maps {secrets.token_hex(6)}"
    await bob.send({"user_id": alice.user_id}, reply_text, reply_to=sent["message_id"])
    answer = await next_of(alice, "message.new")
    assert answer["text"] == reply_text
    # The server keeps only the quoted message's id; each client draws the quote from its own copy.
    assert answer["reply_to"] == {"message_id": sent["message_id"], "from_user_id": alice.user_id, "text": secret_text}
    assert (await next_of(laptop, "message.new"))["text"] == reply_text

    # A file: AES-256-GCM in the client, opaque bytes on the server, the name inside the message.
    content = b"TOP-SECRET-PLANS:" + os.urandom(3000) + b"the vault code is 4711" * 50
    file_name = f"secret-plans-{secrets.token_hex(4)}.pdf"
    caption = f"the plans {secrets.token_hex(6)}"
    await laptop.e2e.send_file(bob.user_id, content, file_name, "application/pdf", text=caption)
    with_file = await next_of(bob, "message.new")
    assert with_file["file"]["name"] == file_name and with_file["file"]["content_type"] == "application/pdf"
    assert with_file["file"]["size"] == len(content) and with_file["text"] == caption
    assert await bob.e2e.download_file(with_file) == content
    assert (await next_of(alice, "message.new"))["file"]["name"] == file_name
    raw = await bob.download(with_file["file"]["file_id"])  # what the server holds and serves
    assert content[:64] not in raw and len(raw) == len(content) + 16

    # A voice message, a sticker, an edit: inside the ciphertext as well.
    voice = b"OggS-fake-voice-" + os.urandom(2000)
    voice_name = f"voice-{secrets.token_hex(4)}.ogg"
    await alice.e2e.send_file(bob.user_id, voice, voice_name, "audio/ogg", voice_ms=4200)
    heard = await next_of(bob, "message.new")
    assert heard["voice"] == {"duration_ms": 4200} and await bob.e2e.download_file(heard) == voice
    assert (await next_of(laptop, "message.new"))["voice"] == {"duration_ms": 4200}
    await bob.send({"user_id": alice.user_id}, sticker_id="builtin:coffee")
    assert (await next_of(alice, "message.new"))["sticker"] == {"sticker_id": "builtin:coffee",
                                                                  "url": "/app/stickers/coffee.svg"}
    await next_of(laptop, "message.new")
    edited_text = f"the eagle lands at noon {secrets.token_hex(6)}"
    await alice.e2e.edit(sent["message_id"], edited_text)
    edited = await next_of(bob, "message.edited")
    assert edited["message_id"] == sent["message_id"] and edited["text"] == edited_text
    assert (await next_of(laptop, "message.edited"))["text"] == edited_text

    # History: the server returns ciphertext, each device shows it from what it decrypted or sent.
    shown = await alice.e2e.history(conversation_id)
    assert [m.get("text") for m in shown][:3] == [edited_text, reply_text, caption]
    assert [m.get("voice") for m in shown][3] == {"duration_ms": 4200} and shown[4]["sticker"]["sticker_id"] == "builtin:coffee"
    page = await alice.history(conversation_id)  # the raw page: envelopes only
    assert all("encrypted" in m and "text" not in m for m in page["messages"])
    listed = {c["conversation_id"]: c for c in (await bob.call("conversations.list"))["conversations"]}
    assert listed[conversation_id].get("encrypted_at")

    # Tampered and replayed ciphertexts: refused by the client, never shown as messages.
    original = page["messages"][0]["encrypted"]
    await alice.call("message.send", {"to": {"user_id": bob.user_id}, "client_msg_id": secrets.token_hex(6),
                                      "encrypted": original})
    replayed = await next_of(bob, "e2e.error")
    assert replayed["reason"] == "replayed"
    body = original["ciphertexts"][0]["body"]
    tampered = {**original, "ciphertexts": [{**c, "body": body[:-10] + ("A" if body[-10] != "A" else "B") + body[-9:]}
                                            for c in original["ciphertexts"]]}
    await alice.call("message.send", {"to": {"user_id": bob.user_id}, "client_msg_id": secrets.token_hex(6),
                                      "encrypted": tampered})
    assert (await next_of(bob, "e2e.error"))["reason"] in ("tampered", "replayed")
    assert {e.reason for e in bob.e2e.errors} >= {"replayed"}
    # Plaintext into an encrypted conversation is refused by the server (an old client cannot leak).
    refused = await alice.request("message.send", {"to": {"user_id": bob.user_id},
                                                   "client_msg_id": secrets.token_hex(6), "text": "oops"})
    assert not refused["ok"] and refused["error"]["code"] == "bad_request"

    await asyncio.sleep(1)  # the last deliveries reach the recorder
    stored = await database_dump(settings)
    carried = list(broker_traffic.bodies)
    assert any(b"olm.v1" in body for body in carried), "the recorder saw the encrypted traffic"
    # (Unique strings only: the database is the whole test session's; "builtin:coffee" is not.)
    needles = [secret_text.encode(), reply_text.encode(), edited_text.encode(), caption.encode(),
               voice[:32], voice_name.encode(), file_name.encode(), content[:32],
               content[1500:1532], b"the vault code is 4711", b"TOP-SECRET-PLANS"]
    for where, blobs in (("MongoDB", stored), ("the broker", carried)):
        for needle in needles:
            leaks = [blob[:200] for blob in blobs if needle in blob]
            assert not leaks, f"{needle[:40]!r} found in clear in {where}: {leaks[:2]}"
    for client in (alice, laptop, bob):
        await client.close()


async def test_a_new_device_reads_earlier_messages_only_once_one_of_mine_shares_them(
        tmp_path: Path, port: int, other_port: int) -> None:
    alice_name, bob_name = f"e2e_a_{secrets.token_hex(4)}", f"e2e_b_{secrets.token_hex(4)}"
    alice = await device(port, alice_name, "phone", tmp_path / "alice.e2e", register=True)
    bob = await device(other_port, bob_name, "phone", tmp_path / "bob-phone.e2e", register=True)
    assert alice.user_id and bob.user_id
    await befriend(alice, bob)
    conversation_id = await alice.e2e.encrypt_conversation(bob.user_id)
    earlier = [f"earlier {i} {secrets.token_hex(4)}" for i in range(3)]
    for text in earlier:
        await alice.send({"user_id": bob.user_id}, text)
    for text in earlier:
        assert (await next_of(bob, "message.new"))["text"] == text

    tablet = await device(port, bob_name, "tablet", tmp_path / "bob-tablet.e2e")
    # Alice hears of the new device (keys.changed) and encrypts to it from now on.
    await next_of(alice, "keys.changed", lambda d: d["device_id"] == "tablet")
    assert await tablet.e2e.history(conversation_id) == []  # nothing it can read: the server cannot help
    assert {e.reason for e in tablet.e2e.errors} == {"not_for_this_device"}

    shared = await bob.e2e.share_history("tablet")
    assert shared == 3
    imported = await next_of(tablet, "e2e.history")
    assert imported["imported"] == 3 and imported["from_device_id"] == "phone"
    assert [m["text"] for m in await tablet.e2e.history(conversation_id)] == earlier
    assert all(m["e2e"]["source"] == "shared" for m in await tablet.e2e.history(conversation_id))

    later = f"later {secrets.token_hex(4)}"
    await alice.send({"user_id": bob.user_id}, later)
    assert (await next_of(tablet, "message.new"))["text"] == later
    assert (await next_of(bob, "message.new"))["text"] == later
    for client in (alice, bob, tablet):
        await client.close()


async def test_safety_numbers_match_and_a_changed_key_is_reported(tmp_path: Path, port: int, other_port: int) -> None:
    alice_name, bob_name = f"e2e_a_{secrets.token_hex(4)}", f"e2e_b_{secrets.token_hex(4)}"
    alice = await device(port, alice_name, "phone", tmp_path / "alice.e2e", register=True)
    bob = await device(other_port, bob_name, "phone", tmp_path / "bob.e2e", register=True)
    assert alice.user_id and bob.user_id
    await befriend(alice, bob)
    await alice.e2e.encrypt_conversation(bob.user_id)
    await alice.send({"user_id": bob.user_id}, "hello")
    assert (await next_of(bob, "message.new"))["text"] == "hello"

    number = await alice.e2e.safety_number(bob.user_id)
    assert number == await bob.e2e.safety_number(alice.user_id) and len(number) == 60
    assert await alice.e2e.verify(bob.user_id, f"parley-sn:1:{number}")  # Alice scans Bob's QR code
    assert not await bob.e2e.verify(alice.user_id, "0" * 60)
    await bob.send({"user_id": alice.user_id}, "verified?")
    assert (await next_of(alice, "message.new"))["e2e"]["verified"] is True

    # Bob reinstalls: the same device id, new keys.
    await bob.close()
    bob = await device(other_port, bob_name, "phone", tmp_path / "bob-reinstalled.e2e")
    changed = await next_of(alice, "e2e.identity_changed")
    assert changed["user_id"] == bob.user_id and changed["device_id"] == "phone"
    assert alice.e2e.identity_changed(bob.user_id)
    after = await alice.e2e.safety_number(bob.user_id)
    assert after != number and after == await bob.e2e.safety_number(alice.user_id)
    await bob.send({"user_id": alice.user_id}, "it is me, new phone")
    message = await next_of(alice, "message.new")
    assert message["text"] == "it is me, new phone"
    assert message["e2e"]["identity_changed"] is True and message["e2e"]["verified"] is False
    await alice.send({"user_id": bob.user_id}, "welcome back")  # to the new keys (a new session)
    assert (await next_of(bob, "message.new"))["text"] == "welcome back"
    assert await alice.e2e.verify(bob.user_id, after) and not alice.e2e.identity_changed(bob.user_id)
    for client in (alice, bob):
        await client.close()
