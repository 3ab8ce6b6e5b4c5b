"""Group administration asked of chat's service: settings, who may act on whom, muting (and what
a send then gets), ownership, dissolving, invite links (uses counted atomically) and join requests."""
import asyncio
from datetime import timedelta

import pytest

from services.chat.domain import groups, invites
from shared.contracts.base import iso, utc_now
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.images import ImageInfo
from tests.unit.helpers import StaticFiles, profile, tick
from tests.unit.world import chat_world, refusal

A, B, C, D, E = "u_alice", "u_bob", "u_carol", "u_dave", "u_erin"


class FilesWithAvatars(StaticFiles):
    """The `Files` port with the avatar images the client made first (images.avatar)."""

    def __init__(self, *avatar_ids: str) -> None:
        super().__init__()
        self.known = {
            i: ImageInfo(image_id=i, kind="avatar" if i.startswith("i_") else "sticker", url=f"/images/{i}",
                         content_type="image/webp", size=10, sha256="0" * 64)
            for i in avatar_ids
        }

    async def images(self, image_ids: list[str]) -> dict[str, ImageInfo]:
        return {i: self.known[i] for i in image_ids if i in self.known}


@pytest.fixture
async def world(db, settings):
    files = FilesWithAvatars("i_pic", "s_sticker")
    async with chat_world(db, settings, *(profile(u) for u in (A, B, C, D, E)), files=files) as world:
        for user in (A, B, C, D, E):
            await world.online(user, "d1", "gw1", f"c_{user}")
        yield world



async def group_of(world, admins=(C,), members=(B, D)) -> str:
    """A owns; `admins` are admins; `members` plain members."""
    reply = await world.ask(A, "groups.create", name="club", member_ids=[*admins, *members])
    for admin in admins:
        await world.ask(A, "groups.set_role", group_id=reply.group_id, user_id=admin, role="admin")
    world.outbox.clear()
    return reply.group_id


async def send(world, sender, group_id, text="hi"):
    return await world.send(sender, group=group_id, client_msg_id=f"{sender}-{text}", text=text)


async def remove(world, actor, group_id, user_id):
    await world.ask(actor, "groups.remove_member", group_id=group_id, user_id=user_id)


async def mute(world, actor, group_id, user_id, until):
    await world.ask(actor, "groups.mute", group_id=group_id, user_id=user_id, until=until)


async def update(world, actor, group_id, **changes):
    return await world.ask(actor, "groups.update", group_id=group_id, **changes)


async def new_invite(world, actor, group_id, **options):
    return await world.ask(actor, "groups.invites.create", group_id=group_id, **options)


async def join(world, user, code):
    return await world.ask(user, "groups.join", code=code)


async def transfer(world, actor, group_id, user_id):
    await world.ask(actor, "groups.transfer_ownership", group_id=group_id, user_id=user_id)


async def accept(world, actor, group_id, user_id):
    await world.ask(actor, "groups.join_requests.accept", group_id=group_id, user_id=user_id)


async def decline(world, actor, group_id, user_id):
    await world.ask(actor, "groups.join_requests.decline", group_id=group_id, user_id=user_id)


async def members(world, user, group_id):
    return (await world.ask(user, "groups.members", group_id=group_id)).members


# --- who may act on whom -------------------------------------------------------------------------
async def test_the_owner_acts_on_anyone_an_admin_on_plain_members_a_member_on_nobody(world):
    group_id = await group_of(world, admins=(C, E), members=(B, D))
    for actor, target, code in [
        (B, D, ErrorCode.FORBIDDEN),  # a member on nobody
        (C, E, ErrorCode.FORBIDDEN),  # an admin not on an admin
        (C, A, ErrorCode.FORBIDDEN),  # nor on the owner
        (C, C, ErrorCode.BAD_REQUEST),  # yourself: leave instead
        (C, "u_stranger", ErrorCode.NOT_FOUND),
    ]:
        assert (await refusal(remove(world, actor, group_id, target))).code == code, (actor, target)
        assert (await refusal(mute(world, actor, group_id, target, utc_now() + timedelta(hours=1)))).code == code
    error = await refusal(remove(world, C, group_id, E))
    assert error.message == "only the owner can remove an admin or the owner"
    assert (await refusal(remove(world, B, group_id, D))).message == "only the owner or an admin can remove members"

    await remove(world, C, group_id, D)  # an admin removes a member
    await remove(world, A, group_id, E)  # the owner removes an admin
    group = await world.conversations.group(group_id)
    assert sorted(group.members) == sorted([A, B, C])
    assert world.pushes(D, event="group.removed") == [
        {"group_id": group_id, "conversation_id": group.conversation_id, "by": C},
    ]
    assert world.pushes(B, event="group.member_left") == [
        {"group_id": group_id, "user_id": D, "removed_by": C}, {"group_id": group_id, "user_id": E, "removed_by": A},
    ]
    assert world.pushes(D, event="group.member_left") == []  # the removed user is told once, as removed
    assert (await refusal(send(world, D, group_id))).code == ErrorCode.FORBIDDEN


# --- muting ----------------------------------------------------------------------------------------
async def test_a_muted_member_cannot_send_until_the_mute_ends_or_is_lifted(world):
    group_id = await group_of(world)
    until = utc_now() + timedelta(minutes=5)
    await mute(world, C, group_id, B, until)
    stamp = iso(until)
    assert world.pushes(D, event="group.member_muted") == [{"group_id": group_id, "user_id": B, "until": stamp}]
    error = await refusal(send(world, B, group_id))
    assert (error.code, error.message) == (ErrorCode.FORBIDDEN, f"you are muted in this group until {stamp}")
    listed = await members(world, D, group_id)
    assert {m.user_id: m.muted_until for m in listed} == {A: None, C: None, B: stamp, D: None}

    await mute(world, A, group_id, B, None)
    assert world.pushes(D, event="group.member_muted")[-1] == {"group_id": group_id, "user_id": B, "until": None}
    await send(world, B, group_id)

    # A mute whose time has passed has ended by itself.
    await world.conversations.mute((await world.conversations.group(group_id)).conversation_id, D,
                                   utc_now() - timedelta(seconds=1))
    await send(world, D, group_id)
    assert all(m.muted_until is None for m in await members(world, A, group_id))


async def test_leaving_and_joining_again_by_a_link_does_not_lift_a_mute(world):
    group_id = await group_of(world)
    until = utc_now() + timedelta(hours=1)
    await mute(world, C, group_id, B, until)
    link = await new_invite(world, A, group_id)
    await world.ask(B, "groups.leave", group_id=group_id)
    assert (await join(world, B, link.code)).status == "joined"
    error = await refusal(send(world, B, group_id))
    assert (error.code, error.message) == (ErrorCode.FORBIDDEN, f"you are muted in this group until {iso(until)}")
    assert {m.user_id: m.muted_until for m in await members(world, A, group_id)}[B] == iso(until)


async def test_mute_times_must_be_in_the_future_and_within_366_days(world):
    group_id = await group_of(world)
    for until in (utc_now() - timedelta(seconds=1), utc_now() + timedelta(days=367)):
        error = await refusal(mute(world, A, group_id, B, until))
        assert error.code == ErrorCode.BAD_REQUEST and error.message.startswith("data.until")
    await mute(world, A, group_id, B, utc_now() + timedelta(days=365))


async def test_everyone_muted_leaves_only_the_owner_and_admins_sending(world):
    group_id = await group_of(world)
    info = await update(world, C, group_id, everyone_muted=True)
    assert info.everyone_muted is True
    error = await refusal(send(world, B, group_id))
    assert (error.code, error.message) == (ErrorCode.FORBIDDEN, "only the owner and admins can send in this group")
    await send(world, A, group_id)
    await send(world, C, group_id)
    await update(world, A, group_id, everyone_muted=False)
    await send(world, B, group_id)


async def test_a_batch_refuses_only_the_muted_senders_items(world):
    group_id = await group_of(world)
    await mute(world, A, group_id, B, utc_now() + timedelta(minutes=1))
    outcomes = await world.send_items([
        (user, "d1", {"to": {"group_id": group_id}, "client_msg_id": f"m{i}", "text": "x"})
        for i, user in enumerate((B, D, B))
    ])
    assert [isinstance(o, ParleyError) for o in outcomes] == [True, False, True]


# --- settings ----------------------------------------------------------------------------------------
async def test_update_changes_settings_and_tells_every_member(world):
    group_id = await group_of(world)
    info = await update(world, C, group_id, name="  Chess club ", description="Tuesdays", avatar_image_id="i_pic")
    assert (info.name, info.description, info.avatar_url) == ("Chess club", "Tuesdays", "/images/i_pic")
    for user in (A, B, C, D):
        assert world.pushes(user, event="group.updated") == [{"group": info.model_dump(), "by": C}]
    assert await world.ask(B, "groups.info", group_id=group_id) == info
    [entry] = [g for g in (await world.ask(B, "groups.list")).groups if g.group_id == group_id]
    assert (entry.name, entry.avatar_url, entry.member_count, entry.role) == ("Chess club", "/images/i_pic", 4,
                                                                              "member")

    cleared = await update(world, A, group_id, clear_avatar=True, approval_required=True)
    assert (cleared.avatar_url, cleared.approval_required, cleared.description) == (None, True, "Tuesdays")

    world.outbox.clear()
    assert await update(world, A, group_id) == cleared  # nothing asked: nothing pushed
    assert world.pushes(B, event="group.updated") == []
    assert (await refusal(update(world, B, group_id, name="mine"))).code == ErrorCode.FORBIDDEN
    for not_an_avatar in ("i_unknown", "s_sticker"):
        assert (await refusal(update(world, A, group_id, avatar_image_id=not_an_avatar))).code == ErrorCode.NOT_FOUND
    assert (await refusal(world.ask(E, "groups.info", group_id=group_id))).code == ErrorCode.FORBIDDEN


# --- ownership and dissolving ------------------------------------------------------------------------------
async def test_transfer_ownership_makes_the_old_owner_an_admin_and_lifts_the_heirs_mute(world):
    group_id = await group_of(world)
    await mute(world, A, group_id, C, utc_now() + timedelta(hours=1))
    assert (await refusal(transfer(world, C, group_id, C))).code == ErrorCode.FORBIDDEN
    await transfer(world, A, group_id, C)
    assert world.pushes(B, event="group.role_changed") == [
        {"group_id": group_id, "user_id": C, "role": "owner"}, {"group_id": group_id, "user_id": A, "role": "admin"},
    ]
    group = await world.conversations.group(group_id)
    assert (group.role_of(C), group.role_of(A), group.roster[C].muted_until) == ("owner", "admin", None)
    await send(world, C, group_id)
    assert (await refusal(transfer(world, C, group_id, C))).code == ErrorCode.BAD_REQUEST  # now the owner: to itself


async def test_dissolve_deletes_the_group_its_messages_links_and_requests(world):
    group_id = await group_of(world)
    conversation_id = (await world.conversations.group(group_id)).conversation_id
    await send(world, B, group_id)
    link = await new_invite(world, A, group_id)
    await update(world, A, group_id, approval_required=True)
    assert (await join(world, E, link.code)).status == "requested"
    assert (await refusal(world.ask(C, "groups.dissolve", group_id=group_id))).code == ErrorCode.FORBIDDEN

    await world.ask(A, "groups.dissolve", group_id=group_id)
    for user in (A, B, C, D):
        assert world.pushes(user, event="group.dissolved") == [
            {"group_id": group_id, "conversation_id": conversation_id},
        ]
    assert await world.conversations.group(group_id) is None
    assert await world.messages.messages.count_documents({"conversation_id": conversation_id}) == 0
    assert await world.invites.of_group(group_id) == [] and await world.join_requests.of_group(group_id) == []
    assert (await refusal(join(world, E, link.code))).message == "this invite link is not valid"


# --- invite links -----------------------------------------------------------------------------------------
async def test_invite_links_say_why_they_cannot_be_used(world):
    group_id = await group_of(world)
    link = await new_invite(world, C, group_id, max_uses=1, expires_in_seconds=3600)
    assert len(link.code) == 22 and link.url == f"/#join={link.code}" and link.created_by == C
    assert (await refusal(new_invite(world, B, group_id))).code == ErrorCode.FORBIDDEN

    assert (await join(world, A, link.code)).status == "joined"  # already a member: nothing used
    joined = await join(world, E, link.code)
    assert (joined.status, joined.group_id) == ("joined", group_id)
    assert world.pushes(E, event="group.added")[0]["group_id"] == group_id
    assert world.pushes(B, event="group.member_joined") == [{"group_id": group_id, "user_id": E}]
    assert (await refusal(join(world, "u_frank", link.code))).message == "this invite link has been used up"

    revoked = await new_invite(world, A, group_id)
    await world.ask(C, "groups.invites.revoke", group_id=group_id, code=revoked.code)
    assert (await refusal(join(world, "u_frank", revoked.code))).message == "this invite link was revoked"
    preview = world.ask("u_frank", "groups.invites.preview", code=revoked.code)
    assert (await refusal(preview)).message == "this invite link was revoked"
    unknown = world.ask(A, "groups.invites.revoke", group_id=group_id, code="nope")
    assert (await refusal(unknown)).code == ErrorCode.NOT_FOUND

    expiring = await new_invite(world, A, group_id, expires_in_seconds=60)
    await world.invites.collection.update_one({"_id": expiring.code},
                                              {"$set": {"expires_at": utc_now() - timedelta(seconds=1)}})
    assert (await refusal(join(world, "u_frank", expiring.code))).message == "this invite link has expired"
    assert (await refusal(join(world, "u_frank", "x" * 22))).message == "this invite link is not valid"

    usable = await new_invite(world, A, group_id)
    listed = await world.ask(C, "groups.invites.list", group_id=group_id)
    assert [i.code for i in listed.invites] == [usable.code]
    shown = await world.ask("u_frank", "groups.invites.preview", code=usable.code)
    assert (shown.name, shown.member_count, shown.approval_required) == ("club", 5, False)


async def test_concurrent_joins_never_pass_max_uses(world):
    group_id = await group_of(world, admins=(), members=())
    link = await new_invite(world, A, group_id, max_uses=3)
    joiners = [f"u_j{i}" for i in range(8)]
    outcomes = await asyncio.gather(*(join(world, u, link.code) for u in joiners), return_exceptions=True)
    assert sum(not isinstance(o, Exception) for o in outcomes) == 3
    assert len((await world.conversations.group(group_id)).members) == 4
    assert (await world.invites.get(link.code)).uses == 3


async def test_a_group_keeps_a_bounded_number_of_links(world, monkeypatch):
    monkeypatch.setattr(invites, "MAX_USABLE_INVITES", 2)
    monkeypatch.setattr(invites, "MAX_STORED_INVITES", 3)
    group_id = await group_of(world)

    async def revoke(code):
        await world.ask(A, "groups.invites.revoke", group_id=group_id, code=code)

    first = await new_invite(world, A, group_id)
    await tick()  # links are ordered by their creation time
    second = await new_invite(world, A, group_id)
    assert (await refusal(new_invite(world, A, group_id))).code == ErrorCode.CONFLICT
    await revoke(first.code)
    await revoke(first.code)  # again: still {}
    await tick()
    third = await new_invite(world, A, group_id)
    await revoke(second.code)
    await tick()
    fourth = await new_invite(world, A, group_id)  # three stored: the oldest unusable one goes
    assert [i.code for i in await world.invites.of_group(group_id)] == [second.code, third.code, fourth.code]


# --- join requests ------------------------------------------------------------------------------------------
async def test_join_requests_are_filed_once_and_accepted_or_declined(world):
    group_id = await group_of(world)
    await update(world, A, group_id, approval_required=True)
    link = await new_invite(world, A, group_id, max_uses=2)
    world.outbox.clear()

    assert (await join(world, E, link.code)).model_dump(exclude_none=True) == {"status": "requested",
                                                                               "group_id": group_id}
    assert (await join(world, E, link.code)).status == "requested"  # again: nothing used
    assert (await world.invites.get(link.code)).uses == 1
    for manager in (A, C):
        assert world.pushes(manager, event="group.join_requested") == [
            {"group_id": group_id, "user": profile(E).model_dump()},
        ]
    assert world.pushes(B, event="group.join_requested") == []
    listed = await world.ask(C, "groups.join_requests", group_id=group_id)
    assert [r.user.user_id for r in listed.requests] == [E]
    assert (await refusal(world.ask(B, "groups.join_requests", group_id=group_id))).code == ErrorCode.FORBIDDEN

    await accept(world, C, group_id, E)
    assert world.pushes(E, event="group.added")[0]["group_id"] == group_id
    assert world.pushes(B, event="group.member_joined") == [{"group_id": group_id, "user_id": E}]
    assert (await world.conversations.group(group_id)).has_member(E)
    assert (await refusal(accept(world, C, group_id, E))).code == ErrorCode.NOT_FOUND

    assert (await join(world, "u_frank", link.code)).status == "requested"
    await decline(world, A, group_id, "u_frank")
    assert await world.join_requests.of_group(group_id) == []
    assert not (await world.conversations.group(group_id)).has_member("u_frank")
    assert (await refusal(decline(world, A, group_id, "u_frank"))).code == ErrorCode.NOT_FOUND


async def test_pending_requests_are_bounded(world, monkeypatch):
    monkeypatch.setattr(invites, "MAX_PENDING_REQUESTS", 2)
    group_id = await group_of(world)
    await update(world, A, group_id, approval_required=True)
    link = await new_invite(world, A, group_id)
    await join(world, E, link.code)
    await join(world, "u_frank", link.code)
    assert (await refusal(join(world, "u_gina", link.code))).code == ErrorCode.CONFLICT
    assert (await world.invites.get(link.code)).uses == 2


async def test_a_blocked_user_cannot_add_the_blocker_or_accept_their_request(world):
    group_id = await group_of(world)
    await world.blocks.add(E, C, utc_now())  # Erin blocked Carol (an admin)
    error = await refusal(world.ask(C, "groups.add_members", group_id=group_id, user_ids=[E]))
    assert (error.code, error.message) == (ErrorCode.FORBIDDEN, "this user cannot be added")
    create = world.ask(C, "groups.create", name="x", member_ids=[E])
    assert (await refusal(create)).message == "this user cannot be added"

    await update(world, A, group_id, approval_required=True)
    link = await new_invite(world, A, group_id)
    await join(world, E, link.code)
    assert (await refusal(accept(world, C, group_id, E))).message == "this user cannot be added"
    await accept(world, A, group_id, E)
    assert (await world.conversations.group(group_id)).has_member(E)


async def test_admitting_to_a_group_dissolved_meanwhile_adds_nobody(world):
    group_id = await group_of(world)
    stale = await world.conversations.group(group_id)
    await world.ask(A, "groups.dissolve", group_id=group_id)
    # A step inside adding members, on the document read before the dissolve: no command carries a stale group.
    assert await groups.admit(stale, [E], world) is None
    assert world.pushes(E, event="group.added") == []
    assert await world.conversations.group(group_id) is None
