"""chat's side of files: a message carrying a file, and who may see a file."""
import pytest

from services.chat.domain import sending, conversations, groups, messaging
from services.chat.domain.attachments import may_see_file
from services.chat.domain.sending import direct_conversation_id
from shared.contracts import chat
from shared.contracts.conversations import MessageRecall
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.groups import GroupAddMembers, GroupCreate
from tests.unit.helpers import chat_world, profile

A, B, C, D = "u_alice", "u_bob", "u_carol", "u_dave"


@pytest.fixture
async def world(db, settings):
    async with chat_world(db, settings, *(profile(u) for u in (A, B, C, D))) as world:
        await world.befriend(A, B)
        await world.befriend(B, C)
        yield world


async def send(world, sender, to, client_msg_id, file_id=None, text=None):
    request = chat.MessageSend(to=to, client_msg_id=client_msg_id, file_id=file_id, text=text)
    return await sending.send_message(
        request, sender, "d1", world.friendships, world.conversations, world.messages, world.deliver, world.files
    )


async def test_a_file_message_carries_the_file_in_push_and_history(world):
    world.files.add("f_1", uploader=A, name="cat.png", size=1234, content_type="image/png")
    await world.online(B, "phone")
    reply = await send(world, A, {"user_id": B}, "c1", file_id="f_1", text="look")
    file = {"file_id": "f_1", "name": "cat.png", "size": 1234, "content_type": "image/png"}
    pushed = [p for p in world.outbox.received_by(B, "phone") if p["type"] == "message.new"]
    assert pushed[0]["data"]["file"] == file and pushed[0]["data"]["text"] == "look"
    history = await messaging.fetch_history(chat.HistoryFetch(conversation_id=reply.conversation_id), B, world.conversations, world.messages)
    assert history.messages[0].file.model_dump() == file


async def test_a_file_alone_is_a_message(world):
    world.files.add("f_1", uploader=A)
    reply = await send(world, A, {"user_id": B}, "c1", file_id="f_1")
    assert reply.seq == 1


@pytest.mark.parametrize("file_id", ["f_missing", "f_bobs"])
async def test_an_unknown_or_unseen_file_is_not_found_and_nothing_is_stored(world, db, file_id):
    world.files.add("f_bobs", uploader=B)  # Bob's, never sent anywhere Alice is
    with pytest.raises(ParleyError) as refused:
        await send(world, A, {"user_id": B}, "c1", file_id=file_id)
    assert refused.value.code == ErrorCode.NOT_FOUND
    assert await db["messages"].count_documents({}) == 0


async def test_a_file_received_may_be_forwarded(world):
    world.files.add("f_1", uploader=A)
    await send(world, A, {"user_id": B}, "c1", file_id="f_1")
    forwarded = await send(world, B, {"user_id": C}, "c2", file_id="f_1")
    assert forwarded.conversation_id == direct_conversation_id(B, C)
    # Carol may now see it too (through Bob's message); Dave may not.
    assert await may_see_file("f_1", C, world.conversations, world.messages)
    assert not await may_see_file("f_1", D, world.conversations, world.messages)


async def test_recalling_the_message_takes_the_file_away(world):
    world.files.add("f_1", uploader=A)
    reply = await send(world, A, {"user_id": B}, "c1", file_id="f_1")
    assert await may_see_file("f_1", B, world.conversations, world.messages)
    await conversations.recall_message(MessageRecall(message_id=reply.message_id), A, "d1", world)
    assert not await may_see_file("f_1", B, world.conversations, world.messages)


async def test_group_members_see_a_file_sent_to_the_group_but_not_those_who_joined_later(world):
    world.files.add("f_1", uploader=A)
    created = await groups.create_group(GroupCreate(name="g", member_ids=[B]), A, world.conversations, world.profiles, world.deliver)
    await send(world, A, {"group_id": created.group_id}, "c1", file_id="f_1")
    await groups.add_members(
        GroupAddMembers(group_id=created.group_id, user_ids=[D]), A, world.conversations, world.profiles, world.deliver
    )
    assert await may_see_file("f_1", B, world.conversations, world.messages)
    assert not await may_see_file("f_1", D, world.conversations, world.messages)
    await groups.leave_group(created.group_id, B, world.conversations, world.messages, world.deliver)
    assert not await may_see_file("f_1", B, world.conversations, world.messages)
