"""End-to-end encrypted groups in chat, on its real stores (docs/security.md "Encrypted groups"):
only the owner or an admin turns encryption on, a group takes one Megolm ciphertext per message
(never Olm, never plaintext), a direct conversation never Megolm, and to-device messages (room
keys) reach another user's devices only when they share an encrypted conversation."""
from typing import Any

import pytest
from pydantic import ValidationError

from services.push.domain.notifications import body_of
from shared.contracts import e2e
from shared.contracts.chat import MessageSend
from shared.contracts.errors import ErrorCode
from tests.support.fake_olm import FakeDevice, b64, envelope, megolm_envelope
from tests.unit.helpers import profile
from tests.unit.world import chat_world, refusal

OWNER, ADMIN, MEMBER, STRANGER = "u_olga", "u_adam", "u_mina", "u_sam"
PHONE = FakeDevice(MEMBER, "d1")
PROFILES = [profile(u) for u in (OWNER, ADMIN, MEMBER, STRANGER)]


@pytest.fixture
async def world(db: Any, settings: Any) -> Any:
    async with chat_world(db, settings, *PROFILES, encryption_watch_seconds=0.01, device_messages_max=3) as world:
        yield world


async def a_group(world: Any) -> str:
    """Olga's group with Adam (an admin) and Mina."""
    group_id = str((await world.ask(OWNER, "groups.create", name="g", member_ids=[ADMIN, MEMBER])).group_id)
    await world.ask(OWNER, "groups.set_role", group_id=group_id, user_id=ADMIN, role="admin")
    return group_id


async def an_encrypted_group(world: Any) -> str:
    group_id = await a_group(world)
    await world.ask(ADMIN, "conversations.encrypt", to={"group_id": group_id})
    return group_id


def room_key(device_id: str, user_id: str | None = None, body: str = "room key") -> dict[str, Any]:
    message = {"device_id": device_id, "sender_key": PHONE.identity_key, "type": 0, "body": b64(body.encode())}
    return message if user_id is None else message | {"user_id": user_id}


def test_the_megolm_envelope_is_refused_unless_well_formed() -> None:
    good = megolm_envelope(PHONE)
    assert isinstance(e2e.ENVELOPE.validate_python(good), e2e.MegolmEncrypted)
    assert isinstance(e2e.ENVELOPE.validate_python(envelope(PHONE, (OWNER, "d1"))), e2e.OlmEncrypted)
    bad = [
        good | {"algorithm": "megolm.v2"},
        good | {"sender_key": "short"},
        good | {"session_id": ""},
        good | {"session_id": "s" * 129},
        good | {"ciphertext": ""},
        good | {"ciphertext": "x" * 22_001},
        good | {"ciphertexts": envelope(PHONE, (OWNER, "d1"))["ciphertexts"]},  # Olm's field in a Megolm envelope
        {k: v for k, v in good.items() if k != "session_id"},
    ]
    for envelope_ in bad:
        with pytest.raises(ValidationError):
            e2e.ENVELOPE.validate_python(envelope_)
    base = {"to": {"group_id": "g_1"}, "client_msg_id": "c1", "encrypted": good}
    MessageSend.model_validate(base | {"file_id": "f_1", "reply_to": "m_1"})
    with pytest.raises(ValidationError, match="encrypted"):
        MessageSend.model_validate(base | {"mentions": [OWNER]})  # mentions go inside
    e2e.DevicesSend.model_validate({"messages": [room_key(f"d{i}", OWNER) for i in range(64)]})
    with pytest.raises(ValidationError):
        e2e.DevicesSend.model_validate({"messages": [room_key(f"d{i}", OWNER) for i in range(65)]})


async def test_only_the_owner_or_an_admin_encrypts_a_group_and_every_member_hears_of_it(world: Any) -> None:
    group_id = await a_group(world)
    for user in (OWNER, ADMIN, MEMBER):
        await world.online(user)
    member = await refusal(world.ask(MEMBER, "conversations.encrypt", to={"group_id": group_id}))
    stranger = await refusal(world.ask(STRANGER, "conversations.encrypt", to={"group_id": group_id}))
    assert member.code == stranger.code == ErrorCode.FORBIDDEN
    assert (await world.stored_group(group_id)).get("encrypted_at") is None
    first = await world.ask(ADMIN, "conversations.encrypt", to={"group_id": group_id})
    again = await world.ask(OWNER, "conversations.encrypt", to={"group_id": group_id})
    assert again == first and first.conversation_id == (await world.stored_group(group_id))["_id"]
    for user in (OWNER, ADMIN, MEMBER):
        (told,) = world.pushes(user, "d1", "conversation.encrypted")
        assert told == {"conversation_id": first.conversation_id, "by_user_id": ADMIN, "encrypted_at": first.encrypted_at}
    (entry,) = [c for c in (await world.ask(MEMBER, "conversations.list")).conversations
                if c.conversation_id == first.conversation_id]
    assert entry.encrypted_at == first.encrypted_at


async def test_an_encrypted_group_takes_one_megolm_ciphertext_and_nothing_else(world: Any) -> None:
    group_id = await an_encrypted_group(world)
    await world.online(OWNER)
    plain = await refusal(world.send(MEMBER, group=group_id, text="in clear"))
    assert plain.code == ErrorCode.BAD_REQUEST and plain.message.startswith("data.encrypted:")
    olm = await refusal(world.send(MEMBER, group=group_id, encrypted=envelope(PHONE, (OWNER, "d1"))))
    assert olm.code == ErrorCode.BAD_REQUEST and olm.message.startswith("data.encrypted.algorithm")
    whole = megolm_envelope(PHONE)
    sent = await world.send(MEMBER, group=group_id, encrypted=whole)
    (new,) = world.pushes(OWNER, "d1", "message.new")
    assert new["encrypted"] == whole and "text" not in new and new["seq"] == sent.seq
    (stored,) = world.events.named("messages.stored")[-1].conversations[0].messages
    assert stored.kind == "encrypted" and stored.preview is None
    assert body_of(stored, True, "en") == ("New encrypted message", False)
    reaction = await refusal(world.ask(OWNER, "reaction.add", message_id=sent.message_id, emoji="👍"))
    assert reaction.code == ErrorCode.BAD_REQUEST
    olm_edit = await refusal(world.ask(MEMBER, "message.edit", message_id=sent.message_id,
                                       encrypted=envelope(PHONE, (OWNER, "d1"))))
    assert olm_edit.message.startswith("data.encrypted.algorithm")
    rewritten = megolm_envelope(PHONE, session_id="session-2")
    await world.ask(MEMBER, "message.edit", message_id=sent.message_id, encrypted=rewritten)
    assert world.pushes(OWNER, "d1", "message.edited")[-1]["encrypted"] == rewritten
    assert (await world.messages.message(sent.message_id)).encrypted == rewritten


async def test_a_direct_conversation_takes_no_megolm_envelope(world: Any) -> None:
    await world.befriend(OWNER, MEMBER)
    await world.ask(OWNER, "conversations.encrypt", to={"user_id": MEMBER})
    megolm = await refusal(world.send(MEMBER, OWNER, encrypted=megolm_envelope(PHONE)))
    assert megolm.code == ErrorCode.BAD_REQUEST and megolm.message.startswith("data.encrypted.algorithm")
    group_id = await a_group(world)  # not encrypted: no envelope at all
    unencrypted = await refusal(world.send(MEMBER, group=group_id, encrypted=megolm_envelope(PHONE)))
    assert unencrypted.message.startswith("data.encrypted: this conversation is not end-to-end encrypted")


async def test_room_keys_go_to_the_devices_of_those_who_share_an_encrypted_conversation(world: Any) -> None:
    await world.befriend(MEMBER, STRANGER)  # friends, but no encrypted conversation
    group_id = await a_group(world)
    world.device_keys.publish(OWNER, "d1")
    world.device_keys.publish(MEMBER, "d1", "laptop")
    world.device_keys.publish(STRANGER, "d1")
    before = await refusal(world.ask(MEMBER, "devices.send", messages=[room_key("d1", OWNER)]))
    assert before.code == ErrorCode.FORBIDDEN and before.message.startswith("data.messages[0].user_id")
    await world.ask(OWNER, "conversations.encrypt", to={"group_id": group_id})
    stranger = await refusal(world.ask(MEMBER, "devices.send", messages=[room_key("d1", OWNER), room_key("d1", STRANGER)]))
    assert stranger.code == ErrorCode.FORBIDDEN and stranger.message.startswith("data.messages[1].user_id")
    unpublished = await refusal(world.ask(MEMBER, "devices.send", messages=[room_key("d1", ADMIN)]))
    assert unpublished.code == ErrorCode.NOT_FOUND and unpublished.message.startswith("data.messages[0].device_id")
    await world.online(OWNER)
    await world.online(MEMBER, "laptop")
    ids = (await world.ask(MEMBER, "devices.send", messages=[room_key("d1", OWNER), room_key("laptop")])).ids
    assert world.pushes(OWNER, "d1", "device.message") == [{
        "id": ids[0], "from_user_id": MEMBER, "from_device_id": "d1", "sender_key": PHONE.identity_key, "type": 0,
        "body": b64(b"room key"), "sent_at": world.pushes(OWNER, "d1", "device.message")[0]["sent_at"],
    }]
    (own,) = world.pushes(MEMBER, "laptop", "device.message")
    assert own["id"] == ids[1] and own["from_user_id"] == MEMBER
    assert world.pushes(MEMBER, "d1", "device.message") == []
    full = await refusal(world.ask(MEMBER, "devices.send", messages=[room_key("d1", OWNER)] * 3))  # 4 > 3 waiting
    assert full.code == ErrorCode.CONFLICT
    await world.sync(OWNER, "d1")
    assert world.push_types(OWNER, "d1")[-2:] == ["device.message", "sync.done"]
    await world.ask(OWNER, "devices.ack", ids=ids[:1])
    assert await world.device_messages.waiting(OWNER, "d1") == (0, 0)
    assert await world.device_messages.waiting(MEMBER, "laptop") != (0, 0)  # not the owner's to acknowledge
