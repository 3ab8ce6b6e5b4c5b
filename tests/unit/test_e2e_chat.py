"""End-to-end encryption in chat, on its real stores (docs/security.md): the envelope's rules,
what an encrypted conversation refuses, burn after reading withholding ciphertexts, what the
event and the notification say of an encrypted message, another replica learning of an
encryption, keys.changed's audience, and to-device messages' bounds and sync."""
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.chat.domain.records import direct_conversation_id
from services.chat.service import ChatService
from services.push.domain.notifications import body_of
from shared.contracts import e2e
from shared.contracts.base import utc_now
from shared.contracts.chat import MessageSend
from shared.contracts.errors import ErrorCode
from shared.declared import Runtime
from tests.support.fake_olm import FakeDevice, b64, envelope
from tests.unit.helpers import profile
from tests.unit.world import chat_world, refusal

A, B, C = "u_alice", "u_bob", "u_carol"
PHONE = FakeDevice(A, "d1")
PROFILES = [profile(u) for u in (A, B, C, "u_dave")]


@pytest.fixture
async def world(db: Any, settings: Any) -> Any:
    async with chat_world(db, settings, *PROFILES, encryption_watch_seconds=0.01, device_messages_max=3) as world:
        await world.befriend(A, B)
        await world.befriend(A, C)
        yield world


async def encrypted(world: Any) -> str:
    reply = await world.ask(A, "conversations.encrypt", to={"user_id": B})
    return str(reply.conversation_id)


def to_bob(*devices: tuple[str, str]) -> dict[str, Any]:
    return envelope(PHONE, *(devices or [(B, "d1"), (A, "laptop")]))


def test_the_envelope_is_refused_unless_well_formed() -> None:
    good = to_bob()
    e2e.OlmEncrypted.model_validate(good)
    bad = [
        good | {"algorithm": "megolm.v1"},
        good | {"sender_key": "short"},
        good | {"ciphertexts": []},
        good | {"ciphertexts": [good["ciphertexts"][0]] * 2},  # a device twice
        good | {"ciphertexts": [dict(c, device_id=f"d{i}") for i, c in enumerate(good["ciphertexts"] * 33)]},  # 66
        good | {"ciphertexts": [good["ciphertexts"][0] | {"type": 2}]},
        good | {"ciphertexts": [good["ciphertexts"][0] | {"body": "x" * 22_001}]},
    ]
    for envelope_ in bad:
        with pytest.raises(ValidationError):
            e2e.OlmEncrypted.model_validate(envelope_)
    base = {"to": {"user_id": B}, "client_msg_id": "c1", "encrypted": good}
    MessageSend.model_validate(base | {"file_id": "f_1", "reply_to": "m_1", "burn_seconds": 5})
    for clear in ({"text": "hi"}, {"sticker_id": "builtin:wave"}, {"mentions": [B]}):
        with pytest.raises(ValidationError, match="encrypted"):
            MessageSend.model_validate(base | clear)


async def test_an_encrypted_conversation_takes_only_ciphertexts_for_its_members(world: Any) -> None:
    await world.send(A, B, text="before")
    cid = await encrypted(world)
    stored = await world.stored_conversation(cid)
    assert stored["encrypted_at"] is not None
    plain = await refusal(world.send(A, B, text="in clear"))
    assert plain.code == ErrorCode.BAD_REQUEST and plain.message.startswith("data.encrypted")
    stranger = await refusal(world.send(A, B, encrypted=to_bob((B, "d1"), (C, "d1"))))
    assert stranger.message.startswith("data.encrypted.ciphertexts[1].user_id")
    assert (await refusal(world.send(A, C, encrypted=envelope(PHONE, (C, "d1"))))).message.startswith("data.encrypted")
    group = await world.ask(A, "groups.create", name="g", member_ids=[B])
    in_group = await refusal(world.send(A, group=group.group_id, encrypted=envelope(PHONE, (B, "d1"))))
    assert in_group.message.startswith("data.encrypted: this conversation is not end-to-end encrypted")
    sent = await world.send(A, B, encrypted=to_bob())
    assert [m.seq for m in await world.messages.above(cid, 0, 10, utc_now(), 10)] == [1, sent.seq]  # nothing refused stored
    assert (await refusal(world.ask(B, "reaction.add", message_id=sent.message_id, emoji="👍"))).code == ErrorCode.BAD_REQUEST
    before = await world.messages.above(cid, 0, 1, utc_now(), 10)
    edit_old = await refusal(world.ask(A, "message.edit", message_id=before[0].message_id, encrypted=to_bob()))
    assert edit_old.code == ErrorCode.BAD_REQUEST  # a message from before stays as it was


async def test_encrypting_again_answers_the_first_time_without_a_push(world: Any) -> None:
    await world.online(B, "d1")
    first = await world.ask(A, "conversations.encrypt", to={"user_id": B})
    again = await world.ask(B, "conversations.encrypt", to={"user_id": A})
    assert again == first and first.conversation_id == direct_conversation_id(A, B)
    assert len(world.pushes(B, "d1", "conversation.encrypted")) == 1
    (entry,) = [c for c in (await world.ask(B, "conversations.list")).conversations if c.conversation_id == first.conversation_id]
    assert entry.encrypted_at == first.encrypted_at
    assert (await refusal(world.ask(B, "conversations.encrypt", to={"user_id": C}))).code == ErrorCode.FORBIDDEN


async def test_a_burning_encrypted_message_reaches_the_recipient_sealed(world: Any) -> None:
    await encrypted(world)
    await world.online(B, "d1")
    await world.online(A, "laptop")
    whole = to_bob()
    sent = await world.send(A, B, encrypted=whole, burn_seconds=30)
    (sealed,) = world.pushes(B, "d1", "message.new")
    assert "encrypted" not in sealed and sealed["burn"]["seconds"] == 30
    assert world.pushes(A, "laptop", "message.new")[0]["encrypted"] == whole
    opened = await world.ask(B, "message.open", message_id=sent.message_id)
    assert opened.encrypted.model_dump(mode="json") == whole
    await world.messages.burn(sent.message_id, utc_now())
    assert (await world.messages.message(sent.message_id)).encrypted is None


async def test_the_event_and_the_notification_show_nothing_of_an_encrypted_message(world: Any) -> None:
    await encrypted(world)
    await world.send(A, B, encrypted=to_bob())
    (stored,) = world.events.named("messages.stored")[-1].conversations[0].messages
    assert stored.kind == "encrypted" and stored.preview is None
    assert body_of(stored, True, "en") == ("New encrypted message", False)
    assert body_of(stored, True, "zh-CN") == ("新的加密消息", False)


async def test_another_replica_learns_of_the_encryption_before_it_takes_effect(world: Any) -> None:
    other = await ChatService.build(
        Runtime(world.settings, world.rt.db, world.rt.redis), presence=world.presence, deliver=world.deliver,
        events=world.events, profiles=world.profiles, files=world.files, device_keys=world.device_keys,
    )
    try:
        cid = direct_conversation_id(A, B)
        await other.conversations.ensure_direct(cid, [A, B], utc_now())  # held in its memory, plain
        await encrypted(world)  # by this replica
        assert (await other.conversations.ensure_direct(cid, [A, B], utc_now())).encrypted_at is None
        assert await other.conversations.learn_encrypted(utc_now() - timedelta(seconds=5)) == 1
        assert (await other.conversations.ensure_direct(cid, [A, B], utc_now())).encrypted_at is not None
    finally:
        await other.close()


async def test_keys_changed_reaches_who_talks_with_the_user_but_not_the_device(world: Any) -> None:
    group = await world.ask(B, "groups.create", name="g", member_ids=["u_dave"])
    assert group.group_id
    for user, device in ((A, "d1"), (A, "laptop"), (B, "d1"), (C, "d1"), ("u_dave", "d1"), ("u_erin", "d1")):
        await world.online(user, device)
    await world.tell("keys.changed", e2e.KeysChanged(user_id=B, device_id="d1", change="added"))
    told = {(u, d) for u, d in ((A, "d1"), (A, "laptop"), (B, "d1"), (C, "d1"), ("u_dave", "d1"), ("u_erin", "d1"))
            if world.pushes(u, d, "keys.changed")}
    assert told == {(A, "d1"), (A, "laptop"), ("u_dave", "d1")}  # a friend, a group member; not bob's own d1


async def test_to_device_messages_are_bounded_synced_before_sync_done_and_acknowledged(world: Any) -> None:
    world.device_keys.publish(A, "d1", "laptop")
    message = {"device_id": "laptop", "sender_key": PHONE.identity_key, "type": 0, "body": b64(b"room key")}
    ids = (await world.ask(A, "devices.send", messages=[message, message])).ids
    over = await refusal(world.ask(A, "devices.send", messages=[message, message]))  # 4 > 3 waiting
    assert over.code == ErrorCode.CONFLICT
    missing = await refusal(world.ask(A, "devices.send", messages=[message | {"device_id": "tablet"}]))
    assert missing.code == ErrorCode.NOT_FOUND and missing.message.startswith("data.messages[0].device_id")
    await world.sync(A, "laptop")
    assert world.push_types(A, "laptop")[-3:] == ["device.message", "device.message", "sync.done"]
    assert [p["id"] for p in world.pushes(A, "laptop", "device.message")] == ids
    await world.ask(A, "devices.ack", device="laptop", ids=ids[:1])
    await world.ask(A, "devices.ack", device="d1", ids=ids[1:])  # not that device's: nothing
    assert [m.message_id for m in await world.device_messages.for_device(A, "laptop", utc_now(), 10)] == ids[1:]
    await world.tell("keys.changed", e2e.KeysChanged(user_id=A, device_id="laptop", change="replaced"))
    assert await world.device_messages.for_device(A, "laptop", utc_now(), 10) == []  # unreadable now


async def test_to_device_messages_expire_unread(world: Any) -> None:
    world.device_keys.publish(A, "d1", "laptop")
    message = {"device_id": "laptop", "sender_key": PHONE.identity_key, "type": 1, "body": b64(b"old news")}
    await world.ask(A, "devices.send", messages=[message])
    later = utc_now() + world.device_message_ttl + timedelta(seconds=1)
    assert await world.device_messages.for_device(A, "laptop", later, 10) == []  # never pushed once expired
    assert await world.device_messages.delete_expired(later) == 1
    assert await world.device_messages.waiting(A, "laptop") == (0, 0)
