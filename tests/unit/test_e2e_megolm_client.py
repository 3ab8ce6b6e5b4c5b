"""`client.e2e` in encrypted groups over test_e2e_client.py's fake server, taught groups
(docs/security.md "Encrypted groups"): room keys shared as Olm to-device messages to other
users' devices, rotation on membership changes, a message whose key comes later kept and
opened then, acks that never pass a message not handled yet."""
import asyncio
from pathlib import Path
from typing import Any

import pytest
from parley_client import ParleyClient

from tests.unit.test_e2e_client import FakeServer, device


class GroupServer(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.groups: dict[str, list[str]] = {}
        self.held: set[tuple[str, str]] = set()  # devices whose to-device messages are held back
        self.acks: dict[tuple[str, str], int] = {}

    def handle(self, me: tuple[str, str], client: ParleyClient, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        user_id, device_id = me
        if kind == "groups.create":
            gid = f"grp{len(self.groups) + 1}"
            self.groups[gid] = [user_id, *data["member_ids"]]
            self.frames.append({"type": kind, "data": data})
            return {"group_id": gid, "conversation_id": f"g_{gid}"}
        if kind in ("groups.add_members", "groups.remove_member"):
            self.frames.append({"type": kind, "data": data})
            gid = data["group_id"]
            if kind == "groups.add_members":
                for new in data["user_ids"]:
                    self.push(self.groups[gid], "group.member_joined", {"group_id": gid, "user_id": new})
                    self.groups[gid].append(new)
                    self.push([new], "group.added", {"group_id": gid, "name": "g", "conversation_id": f"g_{gid}"})
            else:
                gone = data["user_id"]
                self.groups[gid].remove(gone)
                self.push([gone], "group.removed", {"group_id": gid, "conversation_id": f"g_{gid}", "by": user_id})
                self.push(self.groups[gid], "group.member_left", {"group_id": gid, "user_id": gone,
                                                                  "removed_by": user_id})
            return {}
        if kind == "groups.members":
            assert user_id in self.groups[data["group_id"]]
            return {"members": [{"user_id": u, "role": "member"} for u in self.groups[data["group_id"]]]}
        if kind == "conversations.encrypt" and "group_id" in data["to"]:
            gid = data["to"]["group_id"]
            cid = f"g_{gid}"
            self.encrypted[cid] = "2026-12-07T18:00:00Z"
            self.push(self.groups[gid], "conversation.encrypted", {"conversation_id": cid, "by_user_id": user_id,
                                                                  "encrypted_at": self.encrypted[cid]})
            return {"conversation_id": cid, "encrypted_at": self.encrypted[cid]}
        if kind == "conversations.list":
            direct = super().handle(me, client, kind, data)["conversations"]
            direct = [c for c in direct if not c["conversation_id"].startswith("g_")]
            return {"conversations": direct + [
                {"conversation_id": f"g_{gid}", "kind": "group", "group": {"group_id": gid, "name": "g"},
                 **({"encrypted_at": self.encrypted[f"g_{gid}"]} if f"g_{gid}" in self.encrypted else {})}
                for gid, members in self.groups.items() if user_id in members]}
        if kind == "message.send" and "group_id" in data["to"]:
            self.frames.append({"type": kind, "data": data})
            gid = data["to"]["group_id"]
            cid = f"g_{gid}"
            assert user_id in self.groups[gid] and "text" not in data and "mentions" not in data
            assert data["encrypted"]["algorithm"] == "megolm.v1"
            seq = len(self.messages[cid]) + 1
            message = {"message_id": f"m{next(self.ids)}", "conversation_id": cid, "seq": seq, "from_user_id": user_id,
                       "to": {"group_id": gid}, "sent_at": "2026-12-07T18:00:00Z", "encrypted": data["encrypted"]}
            self.messages[cid].append(message)
            self.push(self.groups[gid], "message.new", message, but=me)
            return {k: message[k] for k in ("message_id", "conversation_id", "seq", "sent_at")}
        if kind == "devices.send":
            self.frames.append({"type": kind, "data": data})
            assert 1 <= len(data["messages"]) <= 64
            ids = []
            for entry in data["messages"]:
                target = (entry.get("user_id", user_id), entry["device_id"])
                item = {"id": f"dm{next(self.ids)}", "from_user_id": user_id, "from_device_id": device_id,
                        "sender_key": entry["sender_key"], "type": entry["type"], "body": entry["body"],
                        "sent_at": "now"}
                self.waiting[target].append(item)
                socket = self.sockets.get(target)
                if socket is not None and target not in self.held:
                    asyncio.get_running_loop().call_soon(socket._on_push, {"type": "device.message", "data": item})
                ids.append(item["id"])
            return {"ids": ids}
        if kind == "message.edit" and data["message_id"] in {m["message_id"] for m in self.messages.get(
                next((c for c in self.messages if c.startswith("g_")), ""), [])}:
            self.frames.append({"type": kind, "data": data})
            message = next(m for ms in self.messages.values() for m in ms if m["message_id"] == data["message_id"])
            assert message["from_user_id"] == user_id and data["encrypted"]["algorithm"] == "megolm.v1"
            message["encrypted"] = data["encrypted"]
            edited = {k: message[k] for k in ("conversation_id", "message_id", "seq")}
            edited.update(encrypted=data["encrypted"], edited_at="2026-12-07T18:01:00Z")
            self.push(self.groups[message["to"]["group_id"]], "message.edited", edited, but=me)
            return {"message_id": message["message_id"], "edited_at": edited["edited_at"]}
        if kind == "message.ack":
            self.acks[me] = data["seq"]
            return {}
        return super().handle(me, client, kind, data)

    def release(self, target: tuple[str, str]) -> None:
        """Deliver what was held for a device (as a later bind would)."""
        self.held.discard(target)
        for item in self.waiting[target]:
            asyncio.get_running_loop().call_soon(self.sockets[target]._on_push, {"type": "device.message", "data": item})


async def next_of(client: ParleyClient, kind: str, match: Any = None) -> dict[str, Any]:
    while True:
        data = await client.next_push(kind, 5)
        if match is None or match(data):
            return data


async def test_an_encrypted_group_through_the_client(tmp_path: Path) -> None:
    server = GroupServer()
    alice = await device(server, tmp_path, "alice", "phone")
    laptop = await device(server, tmp_path, "alice", "laptop")
    bob = await device(server, tmp_path, "bob", "phone")
    carol = await device(server, tmp_path, "carol", "phone")
    created = await alice.call("groups.create", {"name": "g", "member_ids": ["bob", "carol"]})
    gid = created["group_id"]
    cid = await alice.e2e.encrypt_conversation(group_id=gid)
    for client in (laptop, bob, carol):
        await client.next_push("conversation.encrypted")
        assert client.e2e.is_group_encrypted(gid)
    sent = await alice.send({"group_id": gid}, "hello group", mentions=["bob"])
    room_keys = [f for f in server.frames if f["type"] == "devices.send"]
    assert len(room_keys) == 1 and {(m.get("user_id", "alice"), m["device_id"]) for m in room_keys[0]["data"][
        "messages"]} == {("alice", "laptop"), ("bob", "phone"), ("carol", "phone")}
    for client in (laptop, bob, carol):
        got = await next_of(client, "message.new")
        assert got["text"] == "hello group" and got["mentions"] == ["bob"] and "encrypted" not in got
        assert got["e2e"]["sender_device_id"] == "phone"
    await bob.send({"group_id": gid}, sticker_id="builtin:coffee")
    for client in (alice, laptop, carol):
        assert (await next_of(client, "message.new"))["sticker"]["sticker_id"] == "builtin:coffee"
    # A second message from alice: the same session, no new room key.
    await alice.send({"group_id": gid}, "again")
    assert len([f for f in server.frames if f["type"] == "devices.send" and f["data"]["messages"][0][
        "sender_key"] == alice.e2e.device.identity_key]) == 1  # type: ignore[union-attr]
    for client in (laptop, bob, carol):
        assert (await next_of(client, "message.new"))["text"] == "again"
    await alice.e2e.edit(sent["message_id"], "hello, group")
    assert (await next_of(bob, "message.edited"))["text"] == "hello, group"
    assert all(word not in str(server.frames) for word in ("hello", "again", "coffee"))
    assert [m["text"] for m in await carol.e2e.history(cid) if "text" in m] == ["hello, group", "again"]

    # Carol is removed: alice's next message is under a new session carol never gets.
    await alice.call("groups.remove_member", {"group_id": gid, "user_id": "carol"})
    await next_of(bob, "group.member_left")
    await next_of(alice, "group.member_left")
    await alice.send({"group_id": gid}, "without carol")
    assert (await next_of(bob, "message.new"))["text"] == "without carol"
    newest = server.messages[cid][-1]
    assert carol.e2e.device is not None and newest["encrypted"]["session_id"] not in carol.e2e.device.store.inbound
    with pytest.raises(Exception, match="waiting_for_key"):
        await carol.e2e.decrypt(newest)

    # Dave is added: he reads from his join on, never what came before.
    dave = await device(server, tmp_path, "dave", "phone")
    await alice.call("groups.add_members", {"group_id": gid, "user_ids": ["dave"]})
    await next_of(alice, "group.member_joined")
    await dave.next_push("group.added")
    await asyncio.sleep(0.05)
    assert dave.e2e.is_group_encrypted(gid)  # group.added: conversations.list says it is encrypted
    await alice.send({"group_id": gid}, "welcome dave")
    assert (await next_of(dave, "message.new"))["text"] == "welcome dave"
    assert [m["text"] for m in await dave.e2e.history(cid)] == ["welcome dave"]
    assert {e.reason for e in dave.e2e.errors} <= {"waiting_for_key", "not_for_this_device"} and dave.e2e.errors


async def test_a_message_whose_key_comes_later_is_kept_and_acks_wait(tmp_path: Path) -> None:
    server = GroupServer()
    alice = await device(server, tmp_path, "alice", "phone")
    bob = await device(server, tmp_path, "bob", "phone")
    gid = (await alice.call("groups.create", {"name": "g", "member_ids": ["bob"]}))["group_id"]
    cid = await alice.e2e.encrypt_conversation(group_id=gid)
    await bob.next_push("conversation.encrypted")
    server.held.add(("bob", "phone"))  # the room key is late
    await alice.send({"group_id": gid}, "first")
    await alice.send({"group_id": gid}, "second")
    waiting = [await next_of(bob, "e2e.waiting") for _ in range(2)]
    assert [w["seq"] for w in waiting] == [1, 2] and all(w["conversation_id"] == cid for w in waiting)
    assert bob.e2e.megolm is not None and bob.e2e.megolm.waiting_count() == 2
    await bob.ack()  # kept sealed in the store: acknowledging loses nothing
    assert server.acks[("bob", "phone")] == 2
    server.release(("bob", "phone"))
    assert [(await next_of(bob, "message.new"))["text"] for _ in range(2)] == ["first", "second"]
    key = await next_of(bob, "e2e.room_key")
    assert key["opened"] == 2 and key["from_user_id"] == "alice"
    assert bob.e2e.megolm.waiting_count() == 0 and server.waiting[("bob", "phone")] == []
    # An encrypted message not handled yet holds the ack below it.
    bob.e2e._in_flight[cid] = [3]
    bob.inbox.keep(cid, 3)
    await bob.ack()
    assert server.acks[("bob", "phone")] == 2
    bob.e2e._in_flight[cid] = []
    await bob.ack()
    assert server.acks[("bob", "phone")] == 3


async def test_room_keys_are_chunked_under_the_frame_bounds(tmp_path: Path) -> None:
    server = GroupServer()
    alice = await device(server, tmp_path, "alice", "phone")
    others = [await device(server, tmp_path, f"u{n}", "phone") for n in range(70)]
    gid = (await alice.call("groups.create", {"name": "g", "member_ids": [f"u{n}" for n in range(70)]}))["group_id"]
    await alice.e2e.encrypt_conversation(group_id=gid)
    await alice.send({"group_id": gid}, "to seventy")
    sends = [f for f in server.frames if f["type"] == "devices.send"]
    assert len(sends) >= 2 and sum(len(f["data"]["messages"]) for f in sends) == 70
    assert all(len(str(f["data"])) < 64 * 1024 for f in sends)
    assert (await next_of(others[-1], "message.new"))["text"] == "to seventy"
