"""Group administration end to end (docs/protocol.md "Group administration"): settings and
avatars, removing (and what the removed lose), muting, ownership, dissolving, invite links and
join requests; every refusal over a real socket."""
import asyncio
import io
from datetime import datetime, timedelta, timezone

import httpx
from PIL import Image
from pymongo import AsyncMongoClient

from shared.contracts.base import iso
from shared.settings import Settings
from tests.support.client import Client, new_user


async def upload(port: int, client: Client, body: bytes, name: str) -> str:
    headers = {"Authorization": f"Bearer {client.token}", "X-File-Name": name}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        reply = await http.post("/files", content=body, headers=headers)
    assert reply.status_code == 201, reply.text
    return reply.json()["file_id"]


async def get(port: int, path: str, client: Client | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {client.token}"} if client else {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        return await http.get(path, headers=headers)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


async def group_text(client: Client, group_id: str, text: str) -> dict:
    return await client.reply("message.send", {"to": {"group_id": group_id}, "client_msg_id": text, "text": text})


async def error_of(client: Client, op: str, data: dict) -> tuple[str, str]:
    reply = await client.reply(op, data)
    assert not reply["ok"], (op, reply)
    return reply["error"]["code"], reply["error"]["message"]


async def club(port: int) -> tuple[Client, Client, Client, Client, str, str]:
    """Alice owns, Carol is an admin, Bob and Dave are plain members."""
    alice, bob, carol, dave = [await new_user(port) for _ in range(4)]
    created = await alice.call("groups.create", {"name": "Club", "member_ids": [bob.user_id, carol.user_id,
                                                                               dave.user_id]})
    group_id = created["group_id"]
    await alice.call("groups.set_role", {"group_id": group_id, "user_id": carol.user_id, "role": "admin"})
    for member in (bob, carol, dave):
        await member.next_push("group.role_changed")
    return alice, bob, carol, dave, group_id, created["conversation_id"]


async def close(*clients: Client) -> None:
    for client in clients:
        await client.close()


async def test_who_may_remove_whom_and_the_removed_lose_the_group_at_once(port: int) -> None:
    alice, bob, carol, dave, group_id, conversation_id = await club(port)
    erin = await new_user(port)
    await alice.call("groups.add_members", {"group_id": group_id, "user_ids": [erin.user_id]})
    await alice.call("groups.set_role", {"group_id": group_id, "user_id": erin.user_id, "role": "admin"})
    file_id = await upload(port, alice, b"minutes of the meeting", "minutes.txt")
    await alice.call("message.send", {"to": {"group_id": group_id}, "client_msg_id": "f1", "file_id": file_id})
    assert (await get(port, f"/files/{file_id}", dave)).status_code == 200

    def target(user: Client) -> dict:
        return {"group_id": group_id, "user_id": user.user_id}

    assert await error_of(bob, "groups.remove_member", target(dave)) == (
        "forbidden", "only the owner or an admin can remove members")
    for admin_or_owner in (erin, alice):
        assert await error_of(carol, "groups.remove_member", target(admin_or_owner)) == (
            "forbidden", "only the owner can remove an admin or the owner")
    assert (await error_of(carol, "groups.remove_member", target(carol)))[0] == "bad_request"
    stranger = await new_user(port)
    assert (await error_of(carol, "groups.remove_member", target(stranger)))[0] == "not_found"

    await alice.call("groups.remove_member", target(erin))  # the owner removes an admin
    assert await erin.next_push("group.removed") == {"group_id": group_id, "conversation_id": conversation_id,
                                                     "by": alice.user_id}
    await carol.call("groups.remove_member", target(dave))  # an admin removes a member
    assert await dave.next_push("group.removed") == {"group_id": group_id, "conversation_id": conversation_id,
                                                     "by": carol.user_id}
    assert await bob.next_push("group.member_left") == {"group_id": group_id, "user_id": erin.user_id,
                                                        "removed_by": alice.user_id}
    assert await bob.next_push("group.member_left") == {"group_id": group_id, "user_id": dave.user_id,
                                                        "removed_by": carol.user_id}

    # Dave lost the group like someone who left.
    for op, data in [
        ("history.fetch", {"conversation_id": conversation_id}),
        ("message.send", {"to": {"group_id": group_id}, "client_msg_id": "d1", "text": "still here?"}),
        ("message.ack", {"conversation_id": conversation_id, "seq": 1}),
        ("groups.members", {"group_id": group_id}),
    ]:
        assert (await error_of(dave, op, data))[0] == "forbidden", op
    assert (await get(port, f"/files/{file_id}", dave)).status_code == 404
    assert (await get(port, f"/files/{file_id}", bob)).status_code == 200
    assert [g["group_id"] for g in (await dave.call("groups.list"))["groups"]] == []
    members = await bob.call("groups.members", {"group_id": group_id})
    assert {m["user_id"] for m in members["members"]} == {alice.user_id, bob.user_id, carol.user_id}
    await close(alice, bob, carol, dave, erin, stranger)


async def test_muting_a_member_and_everyone(port: int) -> None:
    alice, bob, carol, dave, group_id, _ = await club(port)

    def mute(user: Client, until: datetime | None) -> dict:
        return {"group_id": group_id, "user_id": user.user_id, "until": iso(until) if until else None}

    now = datetime.now(timezone.utc)
    assert (await error_of(bob, "groups.mute", mute(dave, now + timedelta(hours=1))))[0] == "forbidden"
    assert (await error_of(carol, "groups.mute", mute(alice, now + timedelta(hours=1))))[0] == "forbidden"
    assert (await error_of(carol, "groups.mute", mute(carol, now + timedelta(hours=1))))[0] == "bad_request"
    for bad in (now - timedelta(minutes=1), now + timedelta(days=367)):
        code, message = await error_of(carol, "groups.mute", mute(bob, bad))
        assert code == "bad_request" and message.startswith("data.until"), message
    assert (await error_of(carol, "groups.mute", {**mute(bob, None), "until": "tomorrow"}))[0] == "bad_request"

    # A long mute, lifted by hand.
    long = datetime.now(timezone.utc) + timedelta(days=2)
    await carol.call("groups.mute", mute(bob, long))
    assert await dave.next_push("group.member_muted") == {"group_id": group_id, "user_id": bob.user_id,
                                                          "until": iso(long)}
    refused = await group_text(bob, group_id, "hello?")
    assert refused["error"] == {"code": "forbidden", "message": f"you are muted in this group until {iso(long)}"}
    listed = await dave.call("groups.members", {"group_id": group_id})
    assert {m["user_id"]: m["muted_until"] for m in listed["members"]}[bob.user_id] == iso(long)
    await alice.call("groups.mute", mute(bob, None))
    assert (await dave.next_push("group.member_muted"))["until"] is None
    assert (await group_text(bob, group_id, "thanks"))["ok"]

    # A short mute ends by itself (3 s: room for the refusal inside it on a loaded machine).
    short = datetime.now(timezone.utc) + timedelta(seconds=3)
    await carol.call("groups.mute", mute(dave, short))
    assert (await group_text(dave, group_id, "now"))["error"]["code"] == "forbidden"
    # Chat compares the mute with this machine's clock at each send: one look just past it is
    # no bet on speed (and asking until it works would hide a mute that ends late).
    await asyncio.sleep((short - datetime.now(timezone.utc)).total_seconds() + 0.05)
    assert (await group_text(dave, group_id, "later"))["ok"]

    # Everyone muted: the owner and admins only.
    await carol.call("groups.update", {"group_id": group_id, "everyone_muted": True})
    refused = await group_text(bob, group_id, "me too")
    assert refused["error"] == {"code": "forbidden", "message": "only the owner and admins can send in this group"}
    assert (await group_text(carol, group_id, "admins speak"))["ok"]
    assert (await group_text(alice, group_id, "owner speaks"))["ok"]
    await alice.call("groups.update", {"group_id": group_id, "everyone_muted": False})
    assert (await group_text(bob, group_id, "me too, now"))["ok"]
    await close(alice, bob, carol, dave)


async def test_settings_and_avatar_are_pushed_to_every_member(port: int) -> None:
    alice, bob, carol, dave, group_id, conversation_id = await club(port)
    assert (await error_of(bob, "groups.update", {"group_id": group_id, "name": "Bob's"}))[0] == "forbidden"
    for bad in ({"name": ""}, {"name": "x" * 65}, {"description": "x" * 501},
                {"avatar_image_id": "i_x", "clear_avatar": True}, {"everyone_muted": "maybe"}):
        assert (await error_of(carol, "groups.update", {"group_id": group_id, **bad}))[0] == "bad_request", bad

    # The client makes the picture first (files makes an avatar of the upload), then names it.
    picture = await carol.call("images.avatar", {"file_id": await upload(port, carol, png(), "club.png")})
    info = await carol.call("groups.update", {"group_id": group_id, "name": "Chess club", "description": "Tuesdays",
                                              "avatar_image_id": picture["image_id"]})
    assert info["avatar_url"] == picture["url"]
    assert info["avatar_url"].startswith("/images/")
    assert info == {"group_id": group_id, "conversation_id": conversation_id, "name": "Chess club",
                    "description": "Tuesdays", "avatar_url": info["avatar_url"], "everyone_muted": False,
                    "approval_required": False, "member_count": 4}
    for member in (alice, bob, dave):
        assert await member.next_push("group.updated") == {"group": info, "by": carol.user_id}
    assert (await get(port, info["avatar_url"])).status_code == 200
    assert await bob.call("groups.info", {"group_id": group_id}) == info
    [entry] = (await bob.call("groups.list"))["groups"]
    assert entry == {**info, "role": "member"}
    members = (await bob.call("groups.members", {"group_id": group_id}))["members"]
    assert {m["user_id"]: m["display_name"] for m in members}[alice.user_id] == alice.username
    assert all(set(m) == {"user_id", "username", "display_name", "avatar_url", "role", "muted_until"}
               for m in members)

    not_an_image = await upload(port, carol, b"plain words", "words.txt")
    assert (await error_of(carol, "images.avatar", {"file_id": not_an_image}))[0] == "bad_request"
    someone_elses = await upload(port, bob, png(), "mine.png")
    assert (await error_of(carol, "images.avatar", {"file_id": someone_elses}))[0] == "not_found"
    for not_an_avatar in ("i_made_up", not_an_image):  # no such image, and an upload that is no avatar
        assert (await error_of(carol, "groups.update", {"group_id": group_id, "avatar_image_id": not_an_avatar}))[0] == (
            "not_found")
    cleared = await alice.call("groups.update", {"group_id": group_id, "clear_avatar": True})
    assert cleared["avatar_url"] is None and cleared["name"] == "Chess club"
    assert (await dave.next_push("group.updated"))["group"]["avatar_url"] is None
    await close(alice, bob, carol, dave)


async def test_ownership_passes_on_and_dissolving_ends_everything(port: int, settings: Settings) -> None:
    alice, bob, carol, dave, group_id, conversation_id = await club(port)
    assert (await group_text(bob, group_id, "history"))["ok"]
    code = (await carol.call("groups.invites.create", {"group_id": group_id}))["code"]
    assert (await error_of(carol, "groups.transfer_ownership", {"group_id": group_id, "user_id": bob.user_id}))[
        0] == "forbidden"
    assert (await error_of(alice, "groups.transfer_ownership", {"group_id": group_id, "user_id": alice.user_id}))[
        0] == "bad_request"
    await alice.call("groups.transfer_ownership", {"group_id": group_id, "user_id": bob.user_id})
    assert await dave.next_push("group.role_changed") == {"group_id": group_id, "user_id": bob.user_id, "role": "owner"}
    assert await dave.next_push("group.role_changed") == {"group_id": group_id, "user_id": alice.user_id,
                                                          "role": "admin"}
    roles = {m["user_id"]: m["role"] for m in (await dave.call("groups.members", {"group_id": group_id}))["members"]}
    assert (roles[bob.user_id], roles[alice.user_id]) == ("owner", "admin")
    assert (await error_of(alice, "groups.dissolve", {"group_id": group_id}))[0] == "forbidden"

    await bob.call("groups.dissolve", {"group_id": group_id})
    for member in (alice, bob, carol, dave):
        assert await member.next_push("group.dissolved") == {"group_id": group_id, "conversation_id": conversation_id}
        assert (await error_of(member, "history.fetch", {"conversation_id": conversation_id}))[0] == "forbidden"
        assert (await error_of(member, "groups.info", {"group_id": group_id}))[0] == "forbidden"
        assert (await member.call("groups.list"))["groups"] == []
    assert await error_of(dave, "groups.join", {"code": code}) == ("not_found", "this invite link is not valid")
    mongo = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    try:
        db = mongo[settings.mongo_db]
        assert await db["messages"].count_documents({"conversation_id": conversation_id}) == 0
        assert await db["group_invites"].count_documents({"group_id": group_id}) == 0
    finally:
        await mongo.close()
    await close(alice, bob, carol, dave)


async def test_invite_links_join_preview_revoke_expire_and_use_up(port: int, settings: Settings) -> None:
    alice, bob, carol, dave, group_id, conversation_id = await club(port)
    erin, frank, gina = [await new_user(port) for _ in range(3)]
    assert (await error_of(bob, "groups.invites.create", {"group_id": group_id}))[0] == "forbidden"
    for bad in ({"expires_in_seconds": 59}, {"expires_in_seconds": 2_592_001}, {"max_uses": 0}, {"max_uses": 1001}):
        assert (await error_of(carol, "groups.invites.create", {"group_id": group_id, **bad}))[0] == "bad_request"

    once = await carol.call("groups.invites.create", {"group_id": group_id, "max_uses": 1, "expires_in_seconds": 600})
    assert len(once["code"]) == 22 and once["url"] == f"/#join={once['code']}"
    assert (once["group_id"], once["created_by"], once["max_uses"], once["uses"]) == (group_id, carol.user_id, 1, 0)
    assert await erin.call("groups.invites.preview", {"code": once["code"]}) == {
        "group_id": group_id, "name": "Club", "description": "", "avatar_url": None, "member_count": 4,
        "approval_required": False,
    }
    assert await erin.call("groups.join", {"code": once["code"]}) == {
        "status": "joined", "group_id": group_id, "conversation_id": conversation_id}
    assert (await erin.next_push("group.added"))["group_id"] == group_id
    assert await bob.next_push("group.member_joined") == {"group_id": group_id, "user_id": erin.user_id}
    assert (await erin.call("groups.join", {"code": once["code"]}))["status"] == "joined"  # a member: uses nothing
    assert await error_of(frank, "groups.join", {"code": once["code"]}) == (
        "not_found", "this invite link has been used up")
    assert await error_of(frank, "groups.invites.preview", {"code": once["code"]}) == (
        "not_found", "this invite link has been used up")

    revoked = await alice.call("groups.invites.create", {"group_id": group_id})
    open_link = await alice.call("groups.invites.create", {"group_id": group_id})
    await carol.call("groups.invites.revoke", {"group_id": group_id, "code": revoked["code"]})
    assert await error_of(frank, "groups.join", {"code": revoked["code"]}) == (
        "not_found", "this invite link was revoked")
    assert (await error_of(carol, "groups.invites.revoke", {"group_id": group_id, "code": "unknown"}))[0] == (
        "not_found")
    assert (await error_of(bob, "groups.invites.list", {"group_id": group_id}))[0] == "forbidden"
    listed = (await carol.call("groups.invites.list", {"group_id": group_id}))["invites"]
    assert [i["code"] for i in listed] == [open_link["code"]]  # the usable ones

    expiring = await alice.call("groups.invites.create", {"group_id": group_id, "expires_in_seconds": 60})
    mongo = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    try:
        await mongo[settings.mongo_db]["group_invites"].update_one(
            {"_id": expiring["code"]}, {"$set": {"expires_at": datetime.now(timezone.utc) - timedelta(seconds=1)}}
        )
    finally:
        await mongo.close()
    assert await error_of(frank, "groups.join", {"code": expiring["code"]}) == (
        "not_found", "this invite link has expired")
    assert await error_of(frank, "groups.join", {"code": "A" * 22}) == ("not_found", "this invite link is not valid")

    # A member joining by link reads from the seq at which they joined.
    assert (await group_text(alice, group_id, "before gina"))["ok"]
    await gina.call("groups.join", {"code": open_link["code"]})
    assert (await gina.call("history.fetch", {"conversation_id": conversation_id}))["messages"] == []
    await close(alice, bob, carol, dave, erin, frank, gina)


async def test_join_requests_filed_told_accepted_and_declined(port: int) -> None:
    alice, bob, carol, dave, group_id, conversation_id = await club(port)
    erin, frank = await new_user(port), await new_user(port)
    await alice.call("groups.update", {"group_id": group_id, "approval_required": True})
    link = await carol.call("groups.invites.create", {"group_id": group_id, "max_uses": 5})

    assert await erin.call("groups.join", {"code": link["code"]}) == {"status": "requested", "group_id": group_id}
    assert await erin.call("groups.join", {"code": link["code"]}) == {"status": "requested", "group_id": group_id}
    for manager in (alice, carol):
        told = await manager.next_push("group.join_requested")
        assert told["group_id"] == group_id and told["user"]["user_id"] == erin.user_id
    assert await bob.no_push("group.join_requested", 0.3)
    [usage] = (await carol.call("groups.invites.list", {"group_id": group_id}))["invites"]
    assert usage["uses"] == 1  # filing again used nothing
    assert (await error_of(bob, "groups.join_requests", {"group_id": group_id}))[0] == "forbidden"
    requests = (await carol.call("groups.join_requests", {"group_id": group_id}))["requests"]
    assert [(r["user"]["user_id"], r["user"]["username"]) for r in requests] == [(erin.user_id, erin.username)]
    assert (await error_of(erin, "history.fetch", {"conversation_id": conversation_id}))[0] == "forbidden"

    target = {"group_id": group_id, "user_id": erin.user_id}
    assert (await error_of(bob, "groups.join_requests.accept", target))[0] == "forbidden"
    await carol.call("groups.join_requests.accept", target)
    assert (await erin.next_push("group.added"))["conversation_id"] == conversation_id
    assert await dave.next_push("group.member_joined") == {"group_id": group_id, "user_id": erin.user_id}
    assert (await error_of(carol, "groups.join_requests.accept", target))[0] == "not_found"
    assert (await group_text(erin, group_id, "hello all"))["ok"]

    await frank.call("groups.join", {"code": link["code"]})
    await alice.call("groups.join_requests.decline", {"group_id": group_id, "user_id": frank.user_id})
    assert await frank.next_push("group.join_declined") == {"group_id": group_id, "name": "Club"}
    assert (await error_of(alice, "groups.join_requests.decline", {"group_id": group_id,
                                                                   "user_id": frank.user_id}))[0] == "not_found"
    assert (await carol.call("groups.join_requests", {"group_id": group_id}))["requests"] == []
    assert (await frank.call("groups.list"))["groups"] == []
    await close(alice, bob, carol, dave, erin, frank)


async def test_a_non_member_learns_nothing_from_the_administration_operations(port: int) -> None:
    alice, bob, carol, dave, group_id, _ = await club(port)
    eve = await new_user(port)
    attempts = [
        ("groups.info", {"group_id": group_id}),
        ("groups.update", {"group_id": group_id, "name": "mine"}),
        ("groups.remove_member", {"group_id": group_id, "user_id": bob.user_id}),
        ("groups.mute", {"group_id": group_id, "user_id": bob.user_id, "until": None}),
        ("groups.transfer_ownership", {"group_id": group_id, "user_id": eve.user_id}),
        ("groups.dissolve", {"group_id": group_id}),
        ("groups.invites.create", {"group_id": group_id}),
        ("groups.invites.list", {"group_id": group_id}),
        ("groups.invites.revoke", {"group_id": group_id, "code": "abc"}),
        ("groups.join_requests", {"group_id": group_id}),
        ("groups.join_requests.accept", {"group_id": group_id, "user_id": eve.user_id}),
        ("groups.join_requests.decline", {"group_id": group_id, "user_id": eve.user_id}),
    ]
    for op, data in attempts:
        real = await eve.reply(op, data)
        fake = await eve.reply(op, {**data, "group_id": "g_does_not_exist"})
        assert real["error"] == fake["error"] and real["error"]["code"] == "forbidden", op
    await close(alice, bob, carol, dave, eve)
