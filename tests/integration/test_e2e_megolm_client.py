"""Encrypted groups with the Python client (parley_client.e2e with Megolm, issue 28 step two,
docs/security.md "Encrypted groups") against the session's stack.

Alice (owner, two devices), Bob and Carol: Alice encrypts the group; everyone sends (text with
mentions, a file, a sticker, a voice message) and every device of every member reads it all,
while the test reads every MongoDB collection and every body on the broker's exchanges: no
text, no file bytes, no file name. A replayed or tampered Megolm message is refused. Dave, added
later, cannot open what came before; Carol, removed, and Dave, who left, cannot open what comes
after (Alice's session is rotated and shared with the members only).
"""
import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

import pytest
from parley_client import ParleyClient
from parley_client.e2e import DecryptionError

from shared.settings import Settings
from tests.integration.test_e2e_client import Recorder, broker_traffic, device, next_of
from tests.support.stored import database_dump
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(300)
__all__ = ["broker_traffic"]  # the fixture, for pytest


async def read_by(clients: list[ParleyClient], match: Any) -> list[dict[str, Any]]:
    """The next message.new matching `match` on each client."""
    return [await next_of(client, "message.new", match, timeout=20) for client in clients]


async def test_an_encrypted_group_of_three_reads_everything_and_nothing_in_clear_is_stored_or_carried(
        tmp_path: Path, port: int, other_port: int, settings: Settings, broker_traffic: Recorder) -> None:
    tag = secrets.token_hex(4)
    alice = await device(port, f"g_a_{tag}", "phone", tmp_path / "alice-phone.e2e", register=True)
    laptop = await device(other_port, f"g_a_{tag}", "laptop", tmp_path / "alice-laptop.e2e")
    bob = await device(other_port, f"g_b_{tag}", "phone", tmp_path / "bob.e2e", register=True)
    carol = await device(port, f"g_c_{tag}", "phone", tmp_path / "carol.e2e", register=True)
    assert alice.user_id and bob.user_id and carol.user_id
    created = await alice.call("groups.create", {"name": f"secret {tag}", "member_ids": [bob.user_id, carol.user_id]})
    group_id = created["group_id"]
    conversation_id = await alice.e2e.encrypt_conversation(group_id=group_id)
    assert conversation_id == created["conversation_id"]
    everyone = [alice, laptop, bob, carol]
    for client in (laptop, bob, carol):
        await eventually(lambda c=client: c.e2e.is_group_encrypted(group_id), "the group is known encrypted")

    def others(sender: ParleyClient) -> list[ParleyClient]:
        return [c for c in everyone if c is not sender]

    secret_text = f"the eagle lands at midnight {secrets.token_hex(6)}"
    sent = await alice.send({"group_id": group_id}, secret_text, mentions=[bob.user_id])
    for got in await read_by(others(alice), lambda d: d.get("message_id") == sent["message_id"]):
        assert got["text"] == secret_text and got["mentions"] == [bob.user_id] and "encrypted" not in got
        assert got["e2e"]["sender_device_id"] == "phone"

    reply_text = f"roger, bring the maps {secrets.token_hex(6)}"
    answer = await bob.send({"group_id": group_id}, reply_text, reply_to=sent["message_id"])
    for got in await read_by(others(bob), lambda d: d.get("message_id") == answer["message_id"]):
        assert got["text"] == reply_text and got["reply_to"]["text"] == secret_text

    content = b"TOP-SECRET-PLANS:" + os.urandom(3000) + b"the vault code is 4711" * 50
    file_name = f"secret-plans-{secrets.token_hex(4)}.pdf"
    with_file = await carol.e2e.send_file({"group_id": group_id}, content, file_name, "application/pdf")
    for client, got in zip(others(carol), await read_by(others(carol), lambda d: d.get("message_id") == with_file[
            "message_id"]), strict=True):
        assert got["file"]["name"] == file_name and await client.e2e.download_file(got) == content

    sticker = await carol.send({"group_id": group_id}, sticker_id="builtin:coffee")
    for got in await read_by(others(carol), lambda d: d.get("message_id") == sticker["message_id"]):
        assert got["sticker"]["sticker_id"] == "builtin:coffee"
    voice = b"OggS-fake-voice-" + os.urandom(2000)
    voice_name = f"voice-{secrets.token_hex(4)}.ogg"
    spoken = await laptop.e2e.send_file({"group_id": group_id}, voice, voice_name, "audio/ogg", voice_ms=4200)
    for got in await read_by(others(laptop), lambda d: d.get("message_id") == spoken["message_id"]):
        assert got["voice"] == {"duration_ms": 4200}

    edited_text = f"the eagle lands at noon {secrets.token_hex(6)}"
    await alice.e2e.edit(sent["message_id"], edited_text)
    assert (await next_of(bob, "message.edited", lambda d: d["message_id"] == sent["message_id"]))["text"] == edited_text

    # Every device shows the whole conversation from what it decrypted or sent.
    for client in everyone:
        shown = await client.e2e.history(conversation_id)
        assert [m.get("text") for m in shown][:2] == [edited_text, reply_text], client.device_id
    page = await alice.history(conversation_id)
    assert all(m["encrypted"]["algorithm"] == "megolm.v1" and "text" not in m for m in page["messages"])

    # Replayed and tampered Megolm messages: refused, never shown.
    first = page["messages"][0]["encrypted"]
    await alice.call("message.send", {"to": {"group_id": group_id}, "client_msg_id": secrets.token_hex(6),
                                      "encrypted": first})
    assert (await next_of(bob, "e2e.error"))["reason"] == "replayed"
    ciphertext = first["ciphertext"]
    tampered = {**first, "ciphertext": ciphertext[:30] + ("A" if ciphertext[30] != "A" else "B") + ciphertext[31:]}
    await alice.call("message.send", {"to": {"group_id": group_id}, "client_msg_id": secrets.token_hex(6),
                                      "encrypted": tampered})
    assert (await next_of(bob, "e2e.error"))["reason"] in ("tampered", "replayed")
    refused = await alice.request("message.send", {"to": {"group_id": group_id},
                                                   "client_msg_id": secrets.token_hex(6), "text": "oops"})
    assert not refused["ok"] and refused["error"]["code"] == "bad_request"

    await asyncio.sleep(1)
    stored = await database_dump(settings)
    carried = list(broker_traffic.bodies)
    assert any(b"megolm.v1" in body for body in carried), "the recorder saw the encrypted traffic"
    needles = [secret_text.encode(), reply_text.encode(), edited_text.encode(), voice[:32], voice_name.encode(),
               file_name.encode(), content[:32], content[1500:1532], b"the vault code is 4711", b"TOP-SECRET-PLANS"]
    for where, blobs in (("MongoDB", stored), ("the broker", carried)):
        for needle in needles:
            leaks = [blob[:200] for blob in blobs if needle in blob]
            assert not leaks, f"{needle[:40]!r} found in clear in {where}: {leaks[:2]}"
    for client in everyone:
        await client.close()


async def test_a_member_added_later_cannot_read_before_and_one_removed_cannot_read_after(
        tmp_path: Path, port: int, other_port: int) -> None:
    tag = secrets.token_hex(4)
    alice = await device(port, f"g_a_{tag}", "phone", tmp_path / "alice.e2e", register=True)
    bob = await device(other_port, f"g_b_{tag}", "phone", tmp_path / "bob.e2e", register=True)
    carol = await device(port, f"g_c_{tag}", "phone", tmp_path / "carol.e2e", register=True)
    dave = await device(other_port, f"g_d_{tag}", "phone", tmp_path / "dave.e2e", register=True)
    assert alice.user_id and bob.user_id and carol.user_id and dave.user_id
    group_id = (await alice.call("groups.create", {"name": f"g {tag}", "member_ids": [bob.user_id, carol.user_id]})
                )["group_id"]
    conversation_id = await alice.e2e.encrypt_conversation(group_id=group_id)
    for client in (bob, carol):
        await eventually(lambda c=client: c.e2e.is_group_encrypted(group_id), "the group is known encrypted")
    before = f"before dave {secrets.token_hex(4)}"
    await alice.send({"group_id": group_id}, before)
    for got in await read_by([bob, carol], None):
        assert got["text"] == before

    # Dave joins: Alice's next message is under a new session, shared with him; the one before is not his.
    await alice.call("groups.add_members", {"group_id": group_id, "user_ids": [dave.user_id]})
    await next_of(alice, "group.member_joined", lambda d: d["user_id"] == dave.user_id)
    await next_of(dave, "group.added")
    await eventually(lambda: dave.e2e.is_group_encrypted(group_id), "dave knows the group is encrypted")
    with_dave = f"with dave {secrets.token_hex(4)}"
    await alice.send({"group_id": group_id}, with_dave)
    for got in await read_by([bob, carol, dave], None):
        assert got["text"] == with_dave
    raw = (await alice.history(conversation_id))["messages"]
    earlier = next(m for m in raw if m["seq"] == 1)
    with pytest.raises(DecryptionError) as refused:
        await dave.e2e.decrypt(earlier)
    assert refused.value.reason in ("waiting_for_key", "not_for_this_device")
    assert [m["text"] for m in await dave.e2e.history(conversation_id)] == [with_dave]

    # Carol is removed: the next session is shared with Bob and Dave only.
    await alice.call("groups.remove_member", {"group_id": group_id, "user_id": carol.user_id})
    await next_of(alice, "group.member_left", lambda d: d["user_id"] == carol.user_id)
    after = f"after carol {secrets.token_hex(4)}"
    sent = await alice.send({"group_id": group_id}, after)
    for got in await read_by([bob, dave], None):
        assert got["text"] == after
    newest = next(m for m in (await alice.history(conversation_id))["messages"] if m["message_id"] == sent["message_id"])
    assert carol.e2e.device is not None and newest["encrypted"]["session_id"] not in carol.e2e.device.store.inbound
    with pytest.raises(DecryptionError) as refused:
        await carol.e2e.decrypt(newest)
    assert refused.value.reason == "waiting_for_key"

    # Dave leaves: the same for one who left.
    await dave.call("groups.leave", {"group_id": group_id})
    await next_of(alice, "group.member_left", lambda d: d["user_id"] == dave.user_id)
    last = f"after dave left {secrets.token_hex(4)}"
    sent = await alice.send({"group_id": group_id}, last)
    assert (await next_of(bob, "message.new", lambda d: d.get("message_id") == sent["message_id"]))["text"] == last
    newest = next(m for m in (await alice.history(conversation_id))["messages"] if m["message_id"] == sent["message_id"])
    with pytest.raises(DecryptionError) as refused:
        await dave.e2e.decrypt(newest)
    assert refused.value.reason == "waiting_for_key"
    for client in (alice, bob, carol, dave):
        await client.close()
