"""chat's side of files: a message carrying a file, and who may see a file; asked through chat's
router as a client's commands (and files' access check) arrive."""
import pytest

from shared.partitions import direct_conversation_id
from shared.contracts.errors import ErrorCode, ParleyError
from tests.unit.helpers import profile
from tests.unit.world import chat_world

A, B, C, D = "u_alice", "u_bob", "u_carol", "u_dave"


@pytest.fixture
async def world(db, settings):
    async with chat_world(db, settings, *(profile(u) for u in (A, B, C, D))) as world:
        await world.befriend(A, B)
        await world.befriend(B, C)
        yield world



async def test_a_file_message_carries_the_file_in_push_and_history(world):
    world.files.add("f_1", uploader=A, name="cat.png", size=1234, content_type="image/png")
    await world.online(B, "phone")
    reply = await world.send(A, B, client_msg_id="c1", file_id="f_1", text="look")
    file = {"file_id": "f_1", "name": "cat.png", "size": 1234, "content_type": "image/png"}
    pushed = world.pushes(B, "phone", "message.new")
    assert pushed[0]["file"] == file and pushed[0]["text"] == "look"
    history = await world.ask(B, "history.fetch", conversation_id=reply.conversation_id)
    assert history.messages[0].file.model_dump() == file


async def test_a_file_alone_is_a_message(world):
    world.files.add("f_1", uploader=A)
    reply = await world.send(A, B, client_msg_id="c1", file_id="f_1")
    assert reply.seq == 1


@pytest.mark.parametrize("file_id", ["f_missing", "f_bobs"])
async def test_an_unknown_or_unseen_file_is_not_found_and_nothing_is_stored(world, db, file_id):
    world.files.add("f_bobs", uploader=B)  # Bob's, never sent anywhere Alice is
    with pytest.raises(ParleyError) as refused:
        await world.send(A, B, client_msg_id="c1", file_id=file_id)
    assert refused.value.code == ErrorCode.NOT_FOUND
    assert await db["messages"].count_documents({}) == 0


async def test_a_file_received_may_be_forwarded(world):
    world.files.add("f_1", uploader=A)
    await world.send(A, B, client_msg_id="c1", file_id="f_1")
    forwarded = await world.send(B, C, client_msg_id="c2", file_id="f_1")
    assert forwarded.conversation_id == direct_conversation_id(B, C)
    # Carol may now see it too (through Bob's message); Dave may not.
    assert await world.may_see_file("f_1", C)
    assert not await world.may_see_file("f_1", D)


async def test_recalling_the_message_takes_the_file_away(world):
    world.files.add("f_1", uploader=A)
    reply = await world.send(A, B, client_msg_id="c1", file_id="f_1")
    assert await world.may_see_file("f_1", B)
    await world.ask(A, "message.recall", message_id=reply.message_id)
    assert not await world.may_see_file("f_1", B)


async def test_group_members_see_a_file_sent_to_the_group_but_not_those_who_joined_later(world):
    world.files.add("f_1", uploader=A)
    created = await world.ask(A, "groups.create", name="g", member_ids=[B])
    await world.send(A, group=created.group_id, client_msg_id="c1", file_id="f_1")
    await world.ask(A, "groups.add_members", group_id=created.group_id, user_ids=[D])
    assert await world.may_see_file("f_1", B)
    assert not await world.may_see_file("f_1", D)
    await world.ask(B, "groups.leave", group_id=created.group_id)
    assert not await world.may_see_file("f_1", B)
