"""`client.e2e` (parley_client.e2e.manager) over a fake server in the same process: the key
directory, fan-out and to-device messages of docs/security.md reduced to dictionaries, so the
client's pipeline (pushes decrypted in order, keys.low, keys.changed, history sharing) is
tested without the stack. tests/integration/test_e2e_client.py runs the same against the real one."""
import asyncio
import itertools
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from parley_client import ParleyClient
from parley_client.e2e import E2EError


class FakeServer:
    def __init__(self) -> None:
        self.devices: dict[tuple[str, str], dict[str, Any]] = {}
        self.one_time_keys: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.fallback: dict[tuple[str, str], dict[str, Any]] = {}
        self.sockets: dict[tuple[str, str], ParleyClient] = {}
        self.messages: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.encrypted: dict[str, str] = {}
        self.waiting: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.ids = itertools.count(1)
        self.frames: list[dict[str, Any]] = []

    def push(self, user_ids: list[str], kind: str, data: dict[str, Any], but: tuple[str, str] | None = None) -> None:
        for (user_id, device_id), client in self.sockets.items():
            if user_id in user_ids and (user_id, device_id) != but:
                asyncio.get_running_loop().call_soon(client._on_push, {"type": kind, "data": data})

    def handle(self, me: tuple[str, str], client: ParleyClient, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        user_id, device_id = me
        self.frames.append({"type": kind, "data": data})
        if kind == "keys.publish":
            if "device_keys" in data:
                added = me not in self.devices
                self.devices[me] = {"user_id": user_id, "device_id": device_id, **data["device_keys"]}
                others = [u for u in {k[0] for k in self.sockets}]
                self.push(others, "keys.changed", {"user_id": user_id, "device_id": device_id,
                                                   "change": "added" if added else "replaced"}, but=me)
            self.one_time_keys[me].extend(data.get("one_time_keys", []))
            if "fallback_key" in data:
                self.fallback[me] = data["fallback_key"]
            return {"one_time_key_count": len(self.one_time_keys[me])}
        if kind == "keys.devices":
            return {"devices": [d for k, d in self.devices.items() if k[0] in data["user_ids"]]}
        if kind == "keys.claim":
            keys = []
            for wanted in data["devices"]:
                target = (wanted["user_id"], wanted["device_id"])
                if self.one_time_keys[target]:
                    keys.append({**wanted, **self.one_time_keys[target].pop(0), "fallback": False})
                    if len(self.one_time_keys[target]) < 20:
                        self.push([target[0]], "keys.low", {"one_time_key_count": len(self.one_time_keys[target])})
                elif target in self.fallback:
                    keys.append({**wanted, **self.fallback[target], "fallback": True})
            return {"keys": keys}
        if kind == "conversations.encrypt":
            peer = data["to"]["user_id"]
            cid = "d_" + "_".join(sorted((user_id, peer)))
            self.encrypted[cid] = "2026-12-07T18:00:00Z"
            self.push([user_id, peer], "conversation.encrypted", {"conversation_id": cid, "by_user_id": user_id,
                                                                  "encrypted_at": self.encrypted[cid]})
            return {"conversation_id": cid, "encrypted_at": self.encrypted[cid]}
        if kind == "conversations.list":
            return {"conversations": [
                {"conversation_id": cid, "kind": "direct", "encrypted_at": at,
                 "peer": {"user_id": next(u for u in cid[2:].split("_") if u != user_id)}}
                for cid, at in self.encrypted.items() if user_id in cid[2:].split("_")]}
        if kind == "message.send":
            peer = data["to"]["user_id"]
            cid = "d_" + "_".join(sorted((user_id, peer)))
            assert ("encrypted" in data) == (cid in self.encrypted) and "text" not in data
            seq = len(self.messages[cid]) + 1
            message = {"message_id": f"m{next(self.ids)}", "conversation_id": cid, "seq": seq, "from_user_id": user_id,
                       "to": {"user_id": peer}, "sent_at": "2026-12-07T18:00:00Z", "encrypted": data["encrypted"]}
            self.messages[cid].append(message)
            self.push([user_id, peer], "message.new", message, but=me)
            return {k: message[k] for k in ("message_id", "conversation_id", "seq", "sent_at")}
        if kind == "message.edit":
            message = next(m for ms in self.messages.values() for m in ms if m["message_id"] == data["message_id"])
            assert message["from_user_id"] == user_id and "text" not in data
            message["encrypted"] = data["encrypted"]
            edited = {k: message[k] for k in ("conversation_id", "message_id", "seq")}
            edited.update(encrypted=data["encrypted"], edited_at="2026-12-07T18:01:00Z")
            self.push([user_id, message["to"]["user_id"]], "message.edited", edited, but=me)
            return {"message_id": message["message_id"], "edited_at": edited["edited_at"]}
        if kind == "history.fetch":
            return {"messages": self.messages[data["conversation_id"]], "has_more": False}
        if kind == "devices.send":
            ids = []
            for entry in data["messages"]:
                item = {"id": f"dm{next(self.ids)}", "from_device_id": device_id, "sender_key": entry["sender_key"],
                        "type": entry["type"], "body": entry["body"], "sent_at": "now"}
                self.waiting[(user_id, entry["device_id"])].append(item)
                target = self.sockets.get((user_id, entry["device_id"]))
                if target is not None:
                    asyncio.get_running_loop().call_soon(target._on_push, {"type": "device.message", "data": item})
                ids.append(item["id"])
            return {"ids": ids}
        if kind == "devices.ack":
            self.waiting[me] = [m for m in self.waiting[me] if m["id"] not in data["ids"]]
            return {}
        raise AssertionError(f"the fake server has no {kind}")


class FakeConnection:
    def __init__(self, server: FakeServer, client: ParleyClient):
        self.server, self.client = server, client
        self.me: tuple[str, str] | None = None
        self.closed = asyncio.Event()
        self.close_code = None
        self.closing = False

    @property
    def is_open(self) -> bool:
        return True

    async def request(self, kind: str, data: dict[str, Any], timeout: float) -> dict[str, Any]:
        await asyncio.sleep(0)
        if kind == "auth.login":
            self.me = (data["username"], data.get("device_id", "default"))
            self.server.sockets[self.me] = self.client
            loop = asyncio.get_running_loop()
            for item in self.server.waiting[self.me]:
                loop.call_soon(self.client._on_push, {"type": "device.message", "data": item})
            loop.call_soon(self.client._on_push, {"type": "sync.done", "data": {"count": 0}})
            return {"type": "reply", "id": 1, "ok": True, "data": {"user_id": data["username"], "token": "t",
                                                                   "expires_at": "never"}}
        assert self.me is not None
        return {"type": "reply", "id": 1, "ok": True, "data": self.server.handle(self.me, self.client, kind, data)}

    async def close(self) -> None:
        self.closed.set()


async def device(server: FakeServer, tmp_path: Path, user: str, device_id: str) -> ParleyClient:
    client = ParleyClient("http://127.0.0.1:1")
    client.connection = FakeConnection(server, client)  # type: ignore[assignment]
    await client.e2e.enable(tmp_path / f"{user}-{device_id}.e2e")
    await client.login(user, "password", device_id)
    await client.wait_synced()
    await asyncio.wait_for(client.e2e._ready.wait(), 5)
    return client


async def test_encrypted_conversation_through_the_client(tmp_path: Path) -> None:
    server = FakeServer()
    alice = await device(server, tmp_path, "alice", "phone")
    laptop = await device(server, tmp_path, "alice", "laptop")
    bob = await device(server, tmp_path, "bob", "phone")
    cid = await alice.e2e.encrypt_conversation("bob")
    await bob.next_push("conversation.encrypted")
    await laptop.next_push("conversation.encrypted")
    await alice.send({"user_id": "bob"}, "hello bob")
    got = await bob.next_push("message.new")
    assert got["text"] == "hello bob" and got["e2e"]["sender_device_id"] == "phone" and "encrypted" not in got
    assert (await laptop.next_push("message.new"))["text"] == "hello bob"
    await bob.send({"user_id": "alice"}, "hi alice")
    assert (await alice.next_push("message.new"))["text"] == "hi alice"
    assert (await laptop.next_push("message.new"))["text"] == "hi alice"
    assert all("hello" not in str(f) for f in server.frames)
    assert [m["text"] for m in await alice.e2e.history(cid)] == ["hello bob", "hi alice"]
    # A sticker, an edit: inside the ciphertext too.
    await bob.send({"user_id": "alice"}, sticker_id="builtin:coffee")
    assert (await alice.next_push("message.new"))["sticker"] == {"sticker_id": "builtin:coffee",
                                                                  "url": "/app/stickers/coffee.svg"}
    await laptop.next_push("message.new")
    sent = await alice.send({"user_id": "bob"}, "helo")
    await bob.next_push("message.new")
    await alice.e2e.edit(sent["message_id"], "hello, corrected")
    edited = await bob.next_push("message.edited")
    assert edited["text"] == "hello, corrected" and edited["message_id"] == sent["message_id"] and "encrypted" not in edited
    assert bob.e2e.device is not None and bob.e2e.device.store.messages[sent["message_id"]]["payload"]["text"] == (
        "hello, corrected")
    assert (await laptop.next_push("message.edited"))["text"] == "hello, corrected"
    with pytest.raises(E2EError, match="send_file"):
        await alice.send({"user_id": "bob"}, file_id="f1")
    # Replayed through the server: an e2e.error, no message.
    first = server.messages[cid][0]
    await alice.call("message.send", {"to": {"user_id": "bob"}, "client_msg_id": "again", "encrypted": first["encrypted"]})
    error = await bob.next_push("e2e.error")
    assert error["reason"] == "replayed" and bob.pushes is not None and bob.pushes.empty()
    # Keys are topped up when claims run them low.
    assert len(server.one_time_keys[("bob", "phone")]) >= 40


async def test_history_shared_with_a_new_device_and_an_identity_change(tmp_path: Path) -> None:
    server = FakeServer()
    alice = await device(server, tmp_path, "alice", "phone")
    bob = await device(server, tmp_path, "bob", "phone")
    cid = await alice.e2e.encrypt_conversation("bob")
    await bob.next_push("conversation.encrypted")
    await alice.send({"user_id": "bob"}, "one")
    await alice.send({"user_id": "bob"}, "two")
    assert [(await bob.next_push("message.new"))["text"] for _ in range(2)] == ["one", "two"]
    tablet = await device(server, tmp_path, "bob", "tablet")
    assert await tablet.e2e.history(cid) == []
    assert await bob.e2e.share_history("tablet") == 2
    assert (await tablet.next_push("e2e.history"))["imported"] == 2
    assert [m["text"] for m in await tablet.e2e.history(cid)] == ["one", "two"]
    assert server.waiting[("bob", "tablet")] == []  # acknowledged

    number = await alice.e2e.safety_number("bob")
    assert number == await bob.e2e.safety_number("alice")
    assert await alice.e2e.verify("bob", "parley-sn:1:" + number)
    await bob.close()
    server.sockets.pop(("bob", "phone"))
    bob = await device(server, tmp_path / "reinstalled", "bob", "phone")
    changed = await alice.next_push("e2e.identity_changed")
    assert changed["user_id"] == "bob" and alice.e2e.identity_changed("bob")
    assert await alice.e2e.safety_number("bob") != number
    await bob.send({"user_id": "alice"}, "new phone")
    message = await alice.next_push("message.new")
    assert message["text"] == "new phone" and message["e2e"]["identity_changed"] and not message["e2e"]["verified"]

