"""Encrypted groups with Megolm (parley_client.e2e.group, docs/security.md "Encrypted groups"),
without a server: devices in one process pass room keys over Olm and group messages as a server
would carry them. tests/unit/test_e2e_megolm_client.py runs the client's pipeline over a fake
server; tests/integration/test_e2e_megolm_client.py the real stack."""
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import vodozemac
from parley_client.e2e import DecryptionError, Device, DeviceKeys, E2EStore
from parley_client.e2e import group as group_module
from parley_client.e2e.group import MAX_AGE_SECONDS, MAX_MESSAGES, Megolm, WaitingForKey

from tests.unit.test_e2e import introduce, keys_of, make

CID = "g_conv"
SEQ = itertools.count(1)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def member(tmp_path: Path, user_id: str, device_id: str, clock: Clock) -> tuple[Device, Megolm]:
    device = make(tmp_path, user_id, device_id)
    device.store.encrypted_groups["grp"] = CID
    return device, Megolm(device, clock)


def others(sender: Device, devices: list[Device]) -> list[DeviceKeys]:
    return [keys_of(d) for d in devices if d is not sender]


def share(sender: tuple[Device, Megolm], receivers: list[tuple[Device, Megolm]], members: list[str]) -> str:
    """Rotate the sender's session and deliver its room key over Olm to each receiver."""
    device, megolm = sender
    room_key = megolm.rotate(CID, [keys_of(d) for d, _ in receivers])
    for receiver, receiver_megolm in receivers:
        entry = device.to_device(keys_of(receiver), room_key)
        push = {"id": f"dm{next(SEQ)}", "from_device_id": device.device_id, "from_user_id": device.user_id,
                "sent_at": "now", **{k: entry[k] for k in ("sender_key", "type", "body")}}
        payload = receiver.open_to_device(push, others=True)
        assert payload["type"] == "room_key" and payload["conversation_id"] == CID
        receiver_megolm.accept_room_key(push["sender_key"], payload, members)
    return str(room_key["session_id"])


def group_message(sender: tuple[Device, Megolm], text: str, conversation_id: str = CID, **fields: Any
                  ) -> dict[str, Any]:
    device, megolm = sender
    seq = next(SEQ)
    payload = device.payload(conversation_id, "text", text=text, **fields)
    return {"message_id": f"m{seq}", "conversation_id": CID, "seq": seq, "from_user_id": device.user_id,
            "to": {"group_id": "grp"}, "sent_at": "2026-12-07T18:00:00Z", "encrypted": megolm.encrypt(CID, payload)}


@pytest.fixture
def group(tmp_path: Path) -> dict[str, tuple[Device, Megolm]]:
    clock = Clock()
    devices = {name: member(tmp_path, *name.split("-"), clock) for name in
               ("alice-phone", "alice-laptop", "bob-phone", "carol-phone")}
    introduce(*(d for d, _ in devices.values()))
    return devices


MEMBERS = ["alice", "bob", "carol"]


def test_one_ciphertext_every_member_reads(group: dict[str, tuple[Device, Megolm]]) -> None:
    alice = group["alice-phone"]
    receivers = [group[n] for n in ("alice-laptop", "bob-phone", "carol-phone")]
    session_id = share(alice, receivers, MEMBERS)
    message = group_message(alice, "hello group", mentions=["bob"])
    envelope = message["encrypted"]
    assert envelope["algorithm"] == "megolm.v1" and envelope["session_id"] == session_id
    assert set(envelope) == {"algorithm", "sender_key", "session_id", "ciphertext"} and "hello" not in str(message)
    for _, megolm in receivers:
        record = megolm.decrypt_message(message)
        assert record["payload"]["text"] == "hello group" and record["payload"]["mentions"] == ["bob"]
        assert record["sender_device_id"] == "phone" and record["from_user_id"] == "alice"
    # The sender reads its own message in history too (it keeps an inbound copy).
    alice[0].store.messages.clear()
    assert alice[1].decrypt_message(message)["payload"]["text"] == "hello group"


def test_rotation_rules(group: dict[str, tuple[Device, Megolm]]) -> None:
    device, megolm = group["alice-phone"]
    targets = others(device, [d for d, _ in group.values()])
    assert megolm.needs_rotation(CID, targets)  # before the first message
    megolm.rotate(CID, targets)
    assert not megolm.needs_rotation(CID, targets)
    assert megolm.needs_rotation(CID, targets[:-1])  # a member (or a device) gone
    for n in range(MAX_MESSAGES - 1):
        megolm.encrypt(CID, device.payload(CID, "text", text=str(n)))
    assert not megolm.needs_rotation(CID, targets)
    megolm.encrypt(CID, device.payload(CID, "text", text="100th"))
    assert megolm.needs_rotation(CID, targets)  # 100 messages
    megolm.rotate(CID, targets)
    assert isinstance(megolm.clock, Clock)
    megolm.clock.now += MAX_AGE_SECONDS
    assert megolm.needs_rotation(CID, targets)  # 7 days
    megolm.rotate(CID, targets)
    megolm.mark_stale(CID)  # group.member_joined / group.member_left / keys.changed
    assert megolm.needs_rotation(CID, targets)


def test_a_message_whose_key_comes_later_waits(group: dict[str, tuple[Device, Megolm]]) -> None:
    alice, bob = group["alice-phone"], group["bob-phone"]
    room_key = alice[1].rotate(CID, [keys_of(bob[0])])
    message = group_message(alice, "early")
    with pytest.raises(WaitingForKey) as waiting:
        bob[1].decrypt_message(message)
    bob[1].keep_waiting(waiting.value.session_id, "message.new", message)
    bob[1].keep_waiting(waiting.value.session_id, "message.new", message)  # delivered twice: kept once
    reopened = E2EStore(bob[0].store.path, bob[0].store.pickle_key)  # it survives a restart
    assert len(reopened.waiting[waiting.value.session_id]) == 1 and "early" not in str(reopened.waiting)
    entry = alice[0].to_device(keys_of(bob[0]), room_key)
    push = {"id": "dm1", "from_device_id": "phone", **{k: entry[k] for k in ("sender_key", "type", "body")}}
    bob[1].accept_room_key(push["sender_key"], bob[0].open_to_device(push, others=True), MEMBERS)
    (kept,) = bob[1].take_waiting(waiting.value.session_id)
    assert bob[1].decrypt_message(kept["data"])["payload"]["text"] == "early"
    assert bob[1].waiting_count() == 0


def test_what_waits_for_a_key_is_bounded_in_bytes_the_oldest_dropped(
    group: dict[str, tuple[Device, Megolm]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key that never comes (its sender's device gone) must not grow the store without end."""
    alice, bob = group["alice-phone"], group["bob-phone"]
    alice[1].rotate(CID, [keys_of(bob[0])])  # never shared with bob
    messages = [group_message(alice, f"early {i}") for i in range(5)]
    size = len(json.dumps(messages[0]))
    monkeypatch.setattr(group_module, "MAX_WAITING_BYTES", size * 3 + size // 2)
    dropped: list[str] = []
    for message in messages:
        with pytest.raises(WaitingForKey) as waiting:
            bob[1].decrypt_message(message)
        dropped += bob[1].keep_waiting(waiting.value.session_id, "message.new", message)
    assert dropped == [messages[0]["message_id"], messages[1]["message_id"]]  # the oldest first
    assert bob[1].waiting_count() == 3
    reopened = E2EStore(bob[0].store.path, bob[0].store.pickle_key)
    kept = [w["data"]["message_id"] for ws in reopened.waiting.values() for w in ws]
    assert kept == [m["message_id"] for m in messages[2:]]


def test_replay_and_tampering_are_refused(group: dict[str, tuple[Device, Megolm]]) -> None:
    alice, bob = group["alice-phone"], group["bob-phone"]
    share(alice, [bob], MEMBERS)
    message = group_message(alice, "once")
    assert bob[1].decrypt_message(message)["payload"]["text"] == "once"
    assert bob[1].decrypt_message(message)["payload"]["text"] == "once"  # the same message again: the copy
    with pytest.raises(DecryptionError, match="replayed"):  # the same Megolm index under another id
        bob[1].decrypt_message({**message, "message_id": "other", "seq": 999})
    second = group_message(alice, "twice")
    ciphertext = second["encrypted"]["ciphertext"]
    flipped = ciphertext[:20] + ("A" if ciphertext[20] != "A" else "B") + ciphertext[21:]
    with pytest.raises(DecryptionError, match="tampered"):
        bob[1].decrypt_message({**second, "encrypted": {**second["encrypted"], "ciphertext": flipped}})
    with pytest.raises(DecryptionError, match="tampered"):
        bob[1].decrypt_message({**second, "encrypted": {**second["encrypted"], "ciphertext": "bm90IG1lZ29sbQ"}})
    # Moved to another conversation by the server, or claimed by another member: refused.
    with pytest.raises(DecryptionError, match="bad_payload"):
        bob[1].decrypt_message({**second, "conversation_id": "g_other"})
    with pytest.raises(DecryptionError, match="unknown_sender"):
        bob[1].decrypt_message({**second, "from_user_id": "carol"})
    assert bob[1].decrypt_message(second)["payload"]["text"] == "twice"


def test_room_keys_only_from_a_member_for_its_conversation(group: dict[str, tuple[Device, Megolm]]) -> None:
    carol, bob = group["carol-phone"], group["bob-phone"]
    room_key = carol[1].rotate(CID, [keys_of(bob[0])])
    entry = carol[0].to_device(keys_of(bob[0]), room_key)
    push = {"id": "dm1", "from_device_id": "phone", **{k: entry[k] for k in ("sender_key", "type", "body")}}
    payload = bob[0].open_to_device(push, others=True)
    with pytest.raises(DecryptionError, match="unknown_sender"):  # carol is not a member (any more)
        bob[1].accept_room_key(push["sender_key"], payload, ["alice", "bob"])
    with pytest.raises(DecryptionError, match="bad_payload"):  # a conversation bob does not hold encrypted
        bob[1].accept_room_key(push["sender_key"], {**payload, "conversation_id": "g_other"}, MEMBERS)
    with pytest.raises(DecryptionError, match="bad_payload"):  # names another sender
        bob[1].accept_room_key(push["sender_key"], {**payload, "sender": {"user_id": "alice", "device_id": "phone"}},
                               MEMBERS)
    # Only from another user's device with open_to_device(others=True): history stays mine-only.
    with pytest.raises(DecryptionError, match="unknown_sender"):
        bob[0].open_to_device({**push, "id": "dm2"})


def test_a_later_member_cannot_read_earlier_messages_nor_one_who_left_later_ones(
        tmp_path: Path, group: dict[str, tuple[Device, Megolm]]) -> None:
    alice, bob, carol = group["alice-phone"], group["bob-phone"], group["carol-phone"]
    share(alice, [bob], ["alice", "bob"])
    before = group_message(alice, "before carol")
    # Carol joins: the session is stale (membership changed); were the same one shared with her,
    # it would be from its current index on, so what came before stays closed to her either way.
    device, megolm = alice
    out = megolm.store.outbound[CID]
    session_key_now = megolm.room_key(CID, vodozemac.GroupSession.from_pickle(out["pickle"], device.store.pickle_key))
    assert session_key_now["index"] == 1
    entry = device.to_device(keys_of(carol[0]), session_key_now)
    push = {"id": "dmc", "from_device_id": "phone", **{k: entry[k] for k in ("sender_key", "type", "body")}}
    carol[1].accept_room_key(push["sender_key"], carol[0].open_to_device(push, others=True), MEMBERS)
    with pytest.raises(DecryptionError, match="not_for_this_device"):
        carol[1].decrypt_message(before)
    megolm.mark_stale(CID)
    share(alice, [bob, carol], MEMBERS)
    after = group_message(alice, "with carol")
    assert carol[1].decrypt_message(after)["payload"]["text"] == "with carol"
    # Carol leaves: the next session is shared with bob only; carol's old keys open nothing new.
    share(alice, [bob], ["alice", "bob"])
    later = group_message(alice, "after carol")
    assert bob[1].decrypt_message(later)["payload"]["text"] == "after carol"
    with pytest.raises(WaitingForKey):
        carol[1].decrypt_message(later)


def test_a_message_from_a_device_no_longer_pinned_is_refused(group: dict[str, tuple[Device, Megolm]]) -> None:
    alice, bob = group["alice-phone"], group["bob-phone"]
    share(alice, [bob], MEMBERS)
    message = group_message(alice, "from a phone since removed")
    bob[0].store.pins["alice"]["phone"]["removed"] = True  # keys.devices no longer lists it
    with pytest.raises(DecryptionError, match="unknown_sender"):
        bob[1].decrypt_message(message)
    bob[0].store.pins["alice"]["phone"]["removed"] = False
    assert bob[1].decrypt_message(message)["payload"]["text"] == "from a phone since removed"
