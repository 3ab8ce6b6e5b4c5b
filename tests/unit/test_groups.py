"""services/chat/domain/groups.py: creating groups, members, roles, leaving, and group messages."""
import pytest

from services.chat.domain import groups
from shared.contracts.errors import ErrorCode
from tests.unit.helpers import profile
from tests.unit.world import chat_world, refusal

A, B, C, D, E = "u_alice", "u_bob", "u_carol", "u_dave", "u_erin"
PROFILES = {u: profile(u) for u in (A, B, C, D, E)}


@pytest.fixture
async def world(db, settings):
    async with chat_world(db, settings, *PROFILES.values()) as world:
        yield world


# --- the operations, asked as a client asks them ---------------------------------------------
async def create(world, creator, member_ids, name="team") -> str:
    return (await world.ask(creator, "groups.create", name=name, member_ids=member_ids)).group_id


async def add(world, adder, group_id, user_ids):
    await world.ask(adder, "groups.add_members", group_id=group_id, user_ids=user_ids)


async def leave(world, user, group_id):
    await world.ask(user, "groups.leave", group_id=group_id)


async def set_role(world, owner, group_id, user_id, role):
    await world.ask(owner, "groups.set_role", group_id=group_id, user_id=user_id, role=role)


async def members(world, user, group_id) -> list[tuple[str, str]]:
    reply = await world.ask(user, "groups.members", group_id=group_id)
    return [(m.user_id, m.role) for m in reply.members]


async def my_groups(world, user) -> list[tuple[str, str]]:
    return [(g.group_id, g.role) for g in (await world.ask(user, "groups.list")).groups]


async def send(world, sender, group_id, client_msg_id, text="hi", device="d1"):
    return await world.send(sender, group=group_id, client_msg_id=client_msg_id, text=text, device=device)


async def history(world, user, conversation_id, before_seq=None):
    return await world.ask(user, "history.fetch", conversation_id=conversation_id, before_seq=before_seq)




# --- create ------------------------------------------------------------------------------------
async def test_create_makes_the_creator_owner_and_the_invitees_members(world):
    reply = await world.ask(A, "groups.create", name="  Weekend  ", member_ids=[B, C])  # trimmed by chat

    assert reply.group_id != reply.conversation_id
    assert await members(world, A, reply.group_id) == [(A, "owner"), (B, "member"), (C, "member")]
    for user, role in ((A, "owner"), (B, "member"), (C, "member")):
        [entry] = (await world.ask(user, "groups.list")).groups
        assert entry.model_dump() == {
            "group_id": reply.group_id,
            "name": "Weekend",
            "conversation_id": reply.conversation_id,
            "role": role,
            "description": "",
            "avatar_url": None,
            "everyone_muted": False,
            "approval_required": False,
            "member_count": 3,
        }
    stored = await world.stored_conversation(reply.conversation_id)
    assert (stored["kind"], stored["last_seq"], sorted(stored["members"])) == ("group", 0, sorted([A, B, C]))
    assert {u: i["joined_seq"] for u, i in stored["member_info"].items()} == {A: 0, B: 0, C: 0}


async def test_a_group_of_one_is_allowed(world):
    group_id = await create(world, A, [])
    assert await members(world, A, group_id) == [(A, "owner")]


async def test_create_pushes_group_added_to_online_invitees_but_not_the_creator(world):
    await world.online(A, "phone", "gw1", "c1")
    await world.online(B, "phone", "gw1", "c2")
    await world.online(B, "tablet", "gw2", "c3")
    await world.online(D, "phone", "gw1", "c4")  # online, not invited
    # C is invited but offline

    reply = await world.ask(A, "groups.create", name="team", member_ids=[B, C])

    added = {"group_id": reply.group_id, "name": "team", "conversation_id": reply.conversation_id}
    expected = [{"type": "group.added", "data": added}]
    assert world.outbox.received_by(B, "phone") == expected
    assert world.outbox.received_by(B, "tablet") == expected
    assert world.outbox.received_by(A, "phone") == []
    assert world.outbox.received_by(D, "phone") == []
    assert world.outbox.received_by(C, "d1") == []
    assert sorted(g for g, _ in world.outbox.sent) == ["gw1", "gw2"]


async def test_duplicate_and_own_ids_in_the_member_list_are_ignored(world):
    await world.online(B)
    await world.online(A)

    group_id = await create(world, A, [B, A, C, B, C])

    assert await members(world, A, group_id) == [(A, "owner"), (B, "member"), (C, "member")]
    assert len((await world.stored_group(group_id))["members"]) == 3
    assert world.push_types(B) == ["group.added"]
    assert world.push_types(A) == []


async def test_create_with_an_unknown_user_is_not_found_and_creates_nothing(world, db):
    await world.online(B)
    err = await refusal(create(world, A, [B, "u_nobody"]))
    assert err.code == ErrorCode.NOT_FOUND
    assert "u_nobody" in err.message
    assert await db["conversations"].count_documents({}) == 0
    assert await my_groups(world, A) == []
    assert world.outbox.sent == []


async def test_create_over_the_member_limit_is_bad_request(world, db, monkeypatch):
    monkeypatch.setattr(groups, "MAX_MEMBERS", 3)
    await world.online(B)

    err = await refusal(create(world, A, [B, C, D]))  # four with the creator

    assert err.code == ErrorCode.BAD_REQUEST
    assert "member_ids" in err.message
    assert await db["conversations"].count_documents({}) == 0
    assert world.outbox.sent == []
    # Duplicates and the creator's own id do not count towards the limit.
    group_id = await create(world, A, [B, C, B, A])
    assert len(await members(world, A, group_id)) == 3


# --- add_members -------------------------------------------------------------------------------
async def test_owner_and_admin_may_add_members(world):
    group_id = await create(world, A, [B, C])
    await set_role(world, A, group_id, B, "admin")

    await add(world, A, group_id, [D])
    await add(world, B, group_id, [E])

    assert await members(world, C, group_id) == [(A, "owner"), (B, "admin"), (C, "member"), (D, "member"), (E, "member")]
    assert [g for g, _ in await my_groups(world, E)] == [group_id]


async def test_a_plain_member_may_not_add_members(world):
    group_id = await create(world, A, [B, C])
    await world.online(D)
    await world.online(A)

    err = await refusal(add(world, C, group_id, [D]))

    assert err.code == ErrorCode.FORBIDDEN
    assert [u for u, _ in await members(world, A, group_id)] == [A, B, C]
    assert await my_groups(world, D) == []
    assert world.outbox.sent == []


async def test_a_non_member_may_not_add_members_even_to_an_unknown_group(world):
    group_id = await create(world, A, [B])
    foreign = await refusal(add(world, D, group_id, [E]))
    unknown = await refusal(add(world, D, "g_doesnotexist", [E]))
    assert (foreign.code, unknown.code) == (ErrorCode.FORBIDDEN, ErrorCode.FORBIDDEN)
    assert foreign.message == unknown.message
    assert await my_groups(world, E) == []


async def test_adding_only_existing_members_changes_nothing_and_pushes_nothing(world):
    group_id = await create(world, A, [B, C])
    for user in (A, B, C):
        await world.online(user)
    world.outbox.clear()

    await add(world, A, group_id, [B, C, A])

    assert world.outbox.sent == []
    assert await members(world, A, group_id) == [(A, "owner"), (B, "member"), (C, "member")]


async def test_existing_members_in_the_list_are_skipped_without_pushes(world):
    group_id = await create(world, A, [B, C])
    for user in (A, B, C, D):
        await world.online(user)
    world.outbox.clear()

    await add(world, A, group_id, [B, D, D])

    assert world.push_types(D) == ["group.added"]
    for user in (A, B, C):
        assert world.pushes(user) == [{"group_id": group_id, "user_id": D}]
        assert world.push_types(user) == ["group.member_joined"]
    # B was already in: their role and join point are untouched.
    info = (await world.stored_group(group_id))["member_info"]
    assert (info[B]["role"], info[B]["joined_seq"]) == ("member", 0)


async def test_new_members_get_group_added_and_the_others_one_member_joined_each(world):
    group_id = await create(world, A, [B], name="team")
    conversation_id = (await world.stored_group(group_id))["_id"]
    await world.online(A, "phone", "gw1", "c1")
    await world.online(B, "phone", "gw2", "c2")
    await world.online(D, "phone", "gw1", "c3")
    await world.online(E, "laptop", "gw2", "c4")
    await world.online(C, "phone", "gw1", "c5")  # not added
    world.outbox.clear()

    await add(world, A, group_id, [D, E])

    added = {"group_id": group_id, "name": "team", "conversation_id": conversation_id}
    assert world.outbox.received_by(D, "phone") == [{"type": "group.added", "data": added}]
    assert world.outbox.received_by(E, "laptop") == [{"type": "group.added", "data": added}]
    joined = [{"type": "group.member_joined", "data": {"group_id": group_id, "user_id": u}} for u in (D, E)]
    assert world.outbox.received_by(B, "phone") == joined
    assert world.outbox.received_by(A, "phone") == joined
    assert world.outbox.received_by(C, "phone") == []


async def test_a_new_member_joins_at_the_groups_last_seq(world):
    group_id = await create(world, A, [B])
    for i in range(3):
        await send(world, A, group_id, f"m{i}")

    await add(world, A, group_id, [D])

    info = (await world.stored_group(group_id))["member_info"]
    assert (info[D]["role"], info[D]["joined_seq"]) == ("member", 3)
    assert (info[A]["joined_seq"], info[B]["joined_seq"]) == (0, 0)


async def test_adding_an_unknown_user_is_not_found_and_adds_nobody(world):
    group_id = await create(world, A, [B])
    await world.online(B)
    world.outbox.clear()

    err = await refusal(add(world, A, group_id, [D, "u_nobody"]))

    assert err.code == ErrorCode.NOT_FOUND
    assert [u for u, _ in await members(world, A, group_id)] == [A, B]
    assert world.outbox.sent == []


async def test_adding_beyond_the_member_limit_is_bad_request(world, monkeypatch):
    monkeypatch.setattr(groups, "MAX_MEMBERS", 3)
    group_id = await create(world, A, [B])

    err = await refusal(add(world, A, group_id, [C, D]))

    assert err.code == ErrorCode.BAD_REQUEST
    assert "user_ids" in err.message
    assert [u for u, _ in await members(world, A, group_id)] == [A, B]
    await add(world, A, group_id, [C, B])  # B is in already: three in all is fine
    assert [u for u, _ in await members(world, A, group_id)] == [A, B, C]


# --- a member added later sees only what came after -------------------------------------------
async def test_a_later_member_reads_history_only_from_joining(world):
    group_id = await create(world, A, [B])
    conversation_id = (await world.stored_group(group_id))["_id"]
    for i in range(3):
        await send(world, A, group_id, f"early{i}", text=f"early {i}")
    await add(world, A, group_id, [D])
    await send(world, B, group_id, "late1", text="late 1")
    await send(world, D, group_id, "late2", text="late 2")

    mine = await history(world, D, conversation_id)
    assert [(m.seq, m.text) for m in mine.messages] == [(4, "late 1"), (5, "late 2")]
    assert not mine.has_more
    older = await history(world, D, conversation_id, before_seq=4)
    assert (older.messages, older.has_more) == ([], False)
    assert [m.seq for m in (await history(world, B, conversation_id)).messages] == [1, 2, 3, 4, 5]


async def test_a_later_member_is_synced_only_from_joining(world):
    group_id = await create(world, A, [B])
    for i in range(3):
        await send(world, A, group_id, f"early{i}")
    await add(world, A, group_id, [D])
    await send(world, B, group_id, "late1")
    world.outbox.clear()

    assert await world.sync(D, "phone") == 1
    stream = world.outbox.received_by(D, "phone")
    assert [(p["type"], p["data"].get("seq")) for p in stream] == [("message.new", 4), ("sync.done", None)]
    assert stream[-1]["data"] == {"count": 1}
    assert await world.sync(B, "phone") == 4


# --- group messages ----------------------------------------------------------------------------
async def test_a_non_member_may_not_send_to_a_group(world, db):
    group_id = await create(world, A, [B])
    await world.online(A)
    for target in (group_id, "g_doesnotexist"):
        err = await refusal(send(world, D, target, f"x{target}"))
        assert err.code == ErrorCode.FORBIDDEN
    assert await db["messages"].count_documents({}) == 0
    assert world.outbox.sent == []


async def test_group_messages_take_seqs_and_reach_every_members_devices_but_the_sending_one(world):
    group_id = await create(world, A, [B, C])
    conversation_id = (await world.stored_group(group_id))["_id"]
    await world.online(A, "phone", "gw1", "c1")  # the sending device
    await world.online(A, "laptop", "gw2", "c2")
    await world.online(B, "phone", "gw1", "c3")
    await world.online(C, "tablet", "gw2", "c4")
    await world.online(D, "phone", "gw1", "c5")  # not a member
    world.outbox.clear()

    reply = await send(world, A, group_id, "a1", text="hello all", device="phone")

    assert (reply.seq, reply.conversation_id) == (1, conversation_id)
    for user, device in ((A, "laptop"), (B, "phone"), (C, "tablet")):
        [pushed] = world.outbox.received_by(user, device)
        assert pushed["type"] == "message.new"
        assert pushed["data"] == {
            "message_id": reply.message_id,
            "conversation_id": conversation_id,
            "seq": 1,
            "from_user_id": A,
            "to": {"group_id": group_id},
            "text": "hello all",
            "sent_at": reply.sent_at,
        }
    assert world.outbox.received_by(A, "phone") == []
    assert world.outbox.received_by(D, "phone") == []
    assert [(await send(world, u, group_id, f"{u}1")).seq for u in (B, C, A)] == [2, 3, 4]


# --- leave -------------------------------------------------------------------------------------
async def test_a_non_member_cannot_leave_and_an_unknown_group_looks_the_same(world):
    group_id = await create(world, A, [B])
    await world.online(A)
    foreign = await refusal(leave(world, D, group_id))
    unknown = await refusal(leave(world, D, "g_doesnotexist"))
    assert (foreign.code, unknown.code) == (ErrorCode.FORBIDDEN, ErrorCode.FORBIDDEN)
    assert foreign.message == unknown.message
    assert [u for u, _ in await members(world, A, group_id)] == [A, B]
    assert world.outbox.sent == []


async def test_a_member_leaving_is_announced_to_the_remaining_members(world):
    group_id = await create(world, A, [B, C])
    conversation_id = (await world.stored_group(group_id))["_id"]
    for user in (A, B, C):
        await world.online(user)
    world.outbox.clear()

    await leave(world, C, group_id)

    left = [{"type": "group.member_left", "data": {"group_id": group_id, "user_id": C}}]
    assert world.outbox.received_by(A, "d1") == left
    assert world.outbox.received_by(B, "d1") == left
    assert world.outbox.received_by(C, "d1") == []
    assert await members(world, A, group_id) == [(A, "owner"), (B, "member")]
    assert await my_groups(world, C) == []
    # Gone means gone: no more sending, reading or leaving again.
    for attempt in (send(world, C, group_id, "after"), history(world, C, conversation_id), leave(world, C, group_id)):
        assert (await refusal(attempt)).code == ErrorCode.FORBIDDEN


async def test_owner_leaving_passes_ownership_to_the_longest_standing_admin(world):
    group_id = await create(world, A, [B, C, D])
    await set_role(world, A, group_id, D, "admin")  # promoted first ...
    await set_role(world, A, group_id, C, "admin")  # ... but C has been in the group longer
    for user in (A, B, C, D):
        await world.online(user)
    world.outbox.clear()

    await leave(world, A, group_id)

    assert await members(world, B, group_id) == [(C, "owner"), (D, "admin"), (B, "member")]
    for user in (B, C, D):
        assert world.outbox.received_by(user, "d1") == [
            {"type": "group.member_left", "data": {"group_id": group_id, "user_id": A}},
            {"type": "group.role_changed", "data": {"group_id": group_id, "user_id": C, "role": "owner"}},
        ]
    assert world.outbox.received_by(A, "d1") == []
    assert (await my_groups(world, C)) == [(group_id, "owner")]


async def test_owner_leaving_without_admins_passes_ownership_to_the_longest_standing_member(world):
    group_id = await create(world, A, [D, B, C])  # the order of the list is the order of standing
    await world.online(B)
    world.outbox.clear()

    await leave(world, A, group_id)

    assert await members(world, B, group_id) == [(D, "owner"), (B, "member"), (C, "member")]
    assert world.pushes(B, event="group.role_changed") == [{"group_id": group_id, "user_id": D, "role": "owner"}]


async def test_members_added_later_stand_behind_the_founding_members(world):
    group_id = await create(world, A, [C])
    await add(world, A, group_id, [B])
    await leave(world, A, group_id)
    assert await members(world, B, group_id) == [(C, "owner"), (B, "member")]


async def test_a_member_leaving_does_not_change_the_owner(world):
    group_id = await create(world, A, [B, C])
    await set_role(world, A, group_id, C, "admin")
    await world.online(A)
    world.outbox.clear()

    await leave(world, B, group_id)

    assert world.push_types(A) == ["group.member_left"]
    assert await members(world, A, group_id) == [(A, "owner"), (C, "admin")]


async def test_the_last_member_leaving_deletes_the_group_and_its_messages(world, db):
    group_id = await create(world, A, [B])
    conversation_id = (await world.stored_group(group_id))["_id"]
    for i in range(3):
        await send(world, A, group_id, f"m{i}")
    other = await create(world, C, [D])  # another group's messages stay
    await send(world, C, other, "c1")

    await leave(world, A, group_id)
    assert await db["messages"].count_documents({"conversation_id": conversation_id}) == 3
    await world.online(B)
    world.outbox.clear()
    await leave(world, B, group_id)

    assert world.outbox.sent == []
    assert await world.conversations.group(group_id) is None
    assert await world.conversations.conversation(conversation_id) is None
    assert await db["messages"].count_documents({"conversation_id": conversation_id}) == 0
    assert await db["messages"].count_documents({}) == 1
    assert await my_groups(world, B) == []
    assert (await refusal(leave(world, B, group_id))).code == ErrorCode.FORBIDDEN


# --- set_role ----------------------------------------------------------------------------------
async def test_only_the_owner_may_change_roles(world):
    group_id = await create(world, A, [B, C])
    await set_role(world, A, group_id, B, "admin")
    for user in (A, B, C):
        await world.online(user)
    world.outbox.clear()

    for who in (B, C, D):
        err = await refusal(set_role(world, who, group_id, C, "admin"))
        assert err.code == ErrorCode.FORBIDDEN
    assert (await refusal(set_role(world, B, group_id, B, "member"))).code == ErrorCode.FORBIDDEN

    assert await members(world, A, group_id) == [(A, "owner"), (B, "admin"), (C, "member")]
    assert world.outbox.sent == []


async def test_the_owner_cannot_change_their_own_role(world):
    group_id = await create(world, A, [B])
    err = await refusal(set_role(world, A, group_id, A, "member"))
    assert err.code == ErrorCode.BAD_REQUEST
    assert "user_id" in err.message
    assert (await members(world, A, group_id))[0] == (A, "owner")


async def test_changing_the_role_of_a_non_member_is_not_found(world):
    group_id = await create(world, A, [B])
    for stranger in (D, "u_nobody"):
        assert (await refusal(set_role(world, A, group_id, stranger, "admin"))).code == ErrorCode.NOT_FOUND
    assert await my_groups(world, D) == []


async def test_a_role_change_is_pushed_to_every_member_and_a_repeat_pushes_nothing(world):
    group_id = await create(world, A, [B, C])
    for user in (A, B, C, D):
        await world.online(user)
    world.outbox.clear()

    await set_role(world, A, group_id, B, "admin")

    change = [{"type": "group.role_changed", "data": {"group_id": group_id, "user_id": B, "role": "admin"}}]
    for user in (A, B, C):
        assert world.outbox.received_by(user, "d1") == change
    assert world.outbox.received_by(D, "d1") == []
    assert (await my_groups(world, B)) == [(group_id, "admin")]

    world.outbox.clear()
    await set_role(world, A, group_id, B, "admin")
    await set_role(world, A, group_id, C, "member")
    assert world.outbox.sent == []

    await set_role(world, A, group_id, B, "member")
    assert world.pushes(C) == [{"group_id": group_id, "user_id": B, "role": "member"}]
    assert (await my_groups(world, B)) == [(group_id, "member")]


# --- listing -----------------------------------------------------------------------------------
async def test_list_groups_shows_each_groups_role(world):
    owned = await create(world, A, [B], name="mine")
    joined = await create(world, B, [A], name="bobs")
    promoted = await create(world, C, [A, B], name="carols")
    await set_role(world, C, promoted, A, "admin")
    await create(world, C, [D], name="not mine")

    reply = await world.ask(A, "groups.list")

    by_id = {g.group_id: (g.name, g.role) for g in reply.groups}
    assert by_id == {owned: ("mine", "owner"), joined: ("bobs", "member"), promoted: ("carols", "admin")}
    assert len(reply.groups) == 3
    assert await my_groups(world, E) == []


async def test_list_members_orders_owner_then_admins_then_members_by_standing(world):
    group_id = await create(world, A, [B, C, D])
    await add(world, A, group_id, [E])
    await set_role(world, A, group_id, E, "admin")
    await set_role(world, A, group_id, C, "admin")

    reply = await world.ask(D, "groups.members", group_id=group_id)

    assert [m.model_dump(include={"user_id", "username", "role"}) for m in reply.members] == [
        {"user_id": A, "username": "u_alice", "role": "owner"},
        {"user_id": C, "username": "u_carol", "role": "admin"},
        {"user_id": E, "username": "u_erin", "role": "admin"},
        {"user_id": B, "username": "u_bob", "role": "member"},
        {"user_id": D, "username": "u_dave", "role": "member"},
    ]
    assert {(m.display_name, m.avatar_url, m.muted_until) for m in reply.members[:1]} == {("U_Alice", None, None)}


async def test_list_members_is_for_members_only(world):
    group_id = await create(world, A, [B])
    for target in (group_id, "g_doesnotexist"):
        assert (await refusal(members(world, D, target))).code == ErrorCode.FORBIDDEN
