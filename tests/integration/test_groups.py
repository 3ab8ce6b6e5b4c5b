"""Groups end to end: fan-out, a member offline during the conversation, roles, access."""
from tests.support.client import Client, befriend, log_in_again, new_user
from tests.support.waiting import eventually


async def group_text(client: Client, group_id: str, text: str) -> dict:
    return await client.call("message.send", {"to": {"group_id": group_id}, "client_msg_id": text, "text": text})


async def test_three_member_group_with_one_member_offline_who_syncs_in_order(port: int, other_port: int) -> None:
    alice, bob, carol = await new_user(port), await new_user(other_port), await new_user(port)
    created = await alice.call("groups.create", {"name": "Trio", "member_ids": [bob.user_id, carol.user_id]})
    group_id, conversation_id = created["group_id"], created["conversation_id"]
    for invitee in (bob, carol):
        assert await invitee.next_push("group.added") == {"group_id": group_id, "name": "Trio", "conversation_id": conversation_id}
    await carol.close()  # away for the whole conversation

    for i in range(10):
        await group_text(alice, group_id, f"alice {i}")
        await group_text(bob, group_id, f"bob {i}")
    expected = [t for i in range(10) for t in (f"alice {i}", f"bob {i}")]
    await eventually(
        lambda: len(alice.inbox[conversation_id]) == 10 and len(bob.inbox[conversation_id]) == 10,
        "the other member's ten messages pushed live to alice and bob",
    )
    assert alice.texts(conversation_id) == [t for t in expected if t.startswith("bob")]
    assert bob.texts(conversation_id) == [t for t in expected if t.startswith("alice")]
    assert bob.inbox[conversation_id][1]["to"] == {"group_id": group_id}

    carol = await log_in_again(carol, other_port)
    assert await carol.wait_synced() == 20
    assert sorted(carol.inbox[conversation_id]) == list(range(1, 21))
    assert carol.texts(conversation_id) == expected
    history = await carol.call("history.fetch", {"conversation_id": conversation_id, "limit": 5})
    assert [m["text"] for m in history["messages"]] == expected[-5:] and history["has_more"] is True
    for client in (alice, bob, carol):
        await client.close()


async def test_a_member_added_later_sees_from_their_joining(port: int) -> None:
    alice, bob, dave = await new_user(port), await new_user(port), await new_user(port)
    created = await alice.call("groups.create", {"name": "Before Dave", "member_ids": [bob.user_id]})
    group_id, conversation_id = created["group_id"], created["conversation_id"]
    for i in range(5):
        await group_text(alice, group_id, f"early {i}")

    await alice.call("groups.add_members", {"group_id": group_id, "user_ids": [dave.user_id]})
    added = await dave.next_push("group.added")
    assert added["group_id"] == group_id and added["name"] == "Before Dave"
    assert await bob.next_push("group.member_joined") == {"group_id": group_id, "user_id": dave.user_id}
    assert (await dave.call("history.fetch", {"conversation_id": conversation_id}))["messages"] == []

    await group_text(bob, group_id, "welcome dave")
    assert (await dave.next_push("message.new"))["text"] == "welcome dave"
    history = await dave.call("history.fetch", {"conversation_id": conversation_id})
    assert [m["text"] for m in history["messages"]] == ["welcome dave"] and history["has_more"] is False
    listed = await dave.call("conversations.list")
    entry = next(c for c in listed["conversations"] if c["conversation_id"] == conversation_id)
    assert entry["unread"] == 1 and entry["last_message"]["text"] == "welcome dave"
    # A new device of Dave's syncs from his joining (his phone acknowledged nothing), not from seq 1.
    tablet = await log_in_again(dave, port, "tablet")
    assert await tablet.wait_synced() == 1
    assert sorted(tablet.inbox[conversation_id]) == [6]
    for client in (alice, bob, dave, tablet):
        await client.close()


async def test_roles_add_rights_and_ownership_passing_on(port: int) -> None:
    alice, bob, carol, dave = [await new_user(port) for _ in range(4)]
    created = await alice.call("groups.create", {"name": "Roles", "member_ids": [bob.user_id, carol.user_id]})
    group_id = created["group_id"]

    refused = await carol.reply("groups.add_members", {"group_id": group_id, "user_ids": [dave.user_id]})
    assert refused["error"]["code"] == "forbidden"
    assert (await carol.reply("groups.set_role", {"group_id": group_id, "user_id": bob.user_id, "role": "admin"}))[
        "error"
    ]["code"] == "forbidden"
    await alice.call("groups.set_role", {"group_id": group_id, "user_id": carol.user_id, "role": "admin"})
    assert await bob.next_push("group.role_changed") == {"group_id": group_id, "user_id": carol.user_id, "role": "admin"}
    await carol.call("groups.add_members", {"group_id": group_id, "user_ids": [dave.user_id]})
    await dave.next_push("group.added")

    members = await dave.call("groups.members", {"group_id": group_id})
    assert [(m["user_id"], m["role"]) for m in members["members"]] == [
        (alice.user_id, "owner"), (carol.user_id, "admin"), (bob.user_id, "member"), (dave.user_id, "member"),
    ]
    assert {m["username"] for m in members["members"]} == {c.username for c in (alice, bob, carol, dave)}

    # The owner leaves: the admin (not the longer-standing member Bob) becomes owner.
    await alice.call("groups.leave", {"group_id": group_id})
    assert await bob.next_push("group.member_left") == {"group_id": group_id, "user_id": alice.user_id}
    assert await bob.next_push("group.role_changed") == {"group_id": group_id, "user_id": carol.user_id, "role": "owner"}
    assert (await alice.call("groups.list"))["groups"] == []
    assert [(g["group_id"], g["role"]) for g in (await carol.call("groups.list"))["groups"]] == [(group_id, "owner")]
    assert (await alice.reply("groups.members", {"group_id": group_id}))["error"]["code"] == "forbidden"

    # Without admins, the longest-standing member inherits; the last one out ends the group.
    assert (await dave.next_push("group.role_changed"))["user_id"] == carol.user_id  # Carol's, above
    await carol.call("groups.leave", {"group_id": group_id})
    assert await dave.next_push("group.role_changed") == {"group_id": group_id, "user_id": bob.user_id, "role": "owner"}
    await bob.call("groups.leave", {"group_id": group_id})
    await dave.call("groups.leave", {"group_id": group_id})
    for client in (alice, bob, carol, dave):
        assert (await client.call("groups.list"))["groups"] == []
        assert (await client.reply("groups.members", {"group_id": group_id}))["error"]["code"] == "forbidden"
        await client.close()


async def test_a_non_member_can_neither_use_nor_discover_a_group(port: int) -> None:
    alice, bob, eve = await new_user(port), await new_user(port), await new_user(port)
    await befriend(alice, eve)  # friendship does not open a group
    created = await alice.call("groups.create", {"name": "Private", "member_ids": [bob.user_id]})
    group_id, conversation_id = created["group_id"], created["conversation_id"]
    await group_text(alice, group_id, "secret")

    attempts = [
        ("message.send", {"to": {"group_id": group_id}, "client_msg_id": "e1", "text": "let me in"}),
        ("history.fetch", {"conversation_id": conversation_id}),
        ("message.ack", {"conversation_id": conversation_id, "seq": 1}),
        ("message.read", {"conversation_id": conversation_id, "seq": 1}),
        ("typing", {"conversation_id": conversation_id}),
        ("groups.members", {"group_id": group_id}),
        ("groups.add_members", {"group_id": group_id, "user_ids": [eve.user_id]}),
        ("groups.leave", {"group_id": group_id}),
        ("groups.set_role", {"group_id": group_id, "user_id": eve.user_id, "role": "admin"}),
    ]
    for op, data in attempts:
        real = await eve.reply(op, data)
        fake_data = {**data}
        if "group_id" in fake_data:
            fake_data["group_id"] = "g_does_not_exist"
        if "conversation_id" in fake_data:
            fake_data["conversation_id"] = "gc_does_not_exist"
        if op == "message.send":
            fake_data = {**data, "to": {"group_id": "g_does_not_exist"}, "client_msg_id": "e2"}
        fake = await eve.reply(op, fake_data)
        assert real["error"] == fake["error"], op  # the same answer: nothing learnt
        assert real["error"]["code"] == "forbidden", op
    assert (await eve.call("groups.list"))["groups"] == []
    assert all(c["kind"] != "group" for c in (await eve.call("conversations.list"))["conversations"])
    history = await bob.call("history.fetch", {"conversation_id": conversation_id})
    assert [m["text"] for m in history["messages"]] == ["secret"]  # nothing of Eve's stored
    for client in (alice, bob, eve):
        await client.close()


async def test_group_bad_input(port: int) -> None:
    alice = await new_user(port)
    for data, field in [
        ({"name": "", "member_ids": []}, "data.name"),
        ({"name": "x" * 65, "member_ids": []}, "data.name"),
        ({"member_ids": []}, "data.name"),
        ({"name": "ok"}, "data.member_ids"),
        ({"name": "ok", "member_ids": "u_1"}, "data.member_ids"),
    ]:
        reply = await alice.reply("groups.create", data)
        assert reply["error"]["code"] == "bad_request" and field in reply["error"]["message"], data
    unknown = await alice.reply("groups.create", {"name": "ok", "member_ids": ["u_nobody"]})
    assert unknown["error"]["code"] == "not_found"
    assert (await alice.call("groups.list"))["groups"] == []
    created = await alice.call("groups.create", {"name": "Solo", "member_ids": []})
    empty = await alice.reply("groups.add_members", {"group_id": created["group_id"], "user_ids": []})
    assert empty["error"]["code"] == "bad_request" and "data.user_ids" in empty["error"]["message"]
    both = await alice.reply("message.send", {"to": {"group_id": created["group_id"], "user_id": alice.user_id},
                                              "client_msg_id": "b", "text": "x"})
    assert both["error"]["code"] == "bad_request" and "data.to" in both["error"]["message"]
    await alice.close()
