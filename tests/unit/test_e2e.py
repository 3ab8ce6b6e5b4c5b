"""End-to-end encryption in the client library (parley_client.e2e), without a server: devices
in one process exchange the envelopes a server would carry (docs/security.md)."""
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from parley_client.e2e import (
    DecryptionError, Device, DeviceKeys, E2EError, E2EStore, decrypt_file, encrypt_file, format_safety_number,
    parse_safety_qr, safety_number, safety_qr,
)
from parley_client.e2e.primitives import b64encode

KEY = bytes(range(32))


def make(tmp_path: Path, user_id: str, device_id: str) -> Device:
    return Device(E2EStore(tmp_path / f"{user_id}-{device_id}.e2e", KEY), user_id, device_id)


def listing(*devices: Device) -> list[dict[str, Any]]:
    """keys.devices' entries for these devices."""
    return [{"user_id": d.user_id, "device_id": d.device_id, **d.device_keys()} for d in devices]


def keys_of(device: Device) -> DeviceKeys:
    return DeviceKeys(device.user_id, device.device_id, device.identity_key, device.signing_key)


def claim(device: Device) -> dict[str, Any]:
    """What keys.claim hands out: one of the device's published one-time keys."""
    data = device.keys_to_publish(3, True, True)
    device.published(data)
    return {**data["one_time_keys"][0], "fallback": False}


def introduce(*devices: Device) -> None:
    """Every device pins every other and has an outbound session with it."""
    everyone = listing(*devices)
    users = {d.user_id for d in devices}
    for d in devices:
        d.check_devices(everyone, users)
    for sender in devices:
        for receiver in devices:
            if receiver is not sender and not sender.has_session(receiver.identity_key):
                sender.start_session(keys_of(receiver), claim(receiver))


SEQ = iter(range(1, 10_000))


def send(sender: Device, to: list[Device], text: str, conversation_id: str = "d_ab", **fields: Any) -> dict[str, Any]:
    """The message as the server would push it."""
    payload = sender.payload(conversation_id, "text", text=text, **fields)
    seq = next(SEQ)
    return {"message_id": f"m{seq}", "conversation_id": conversation_id, "seq": seq, "from_user_id": sender.user_id,
            "to": {"user_id": "x"}, "sent_at": "2026-12-07T18:00:00Z",
            "encrypted": sender.envelope(payload, [keys_of(d) for d in to])}


@pytest.fixture
def trio(tmp_path: Path) -> tuple[Device, Device, Device]:
    alice1, alice2, bob = make(tmp_path, "alice", "phone"), make(tmp_path, "alice", "laptop"), make(tmp_path, "bob", "phone")
    introduce(alice1, alice2, bob)
    return alice1, alice2, bob


def test_one_plaintext_to_every_device_of_the_conversation(trio: tuple[Device, Device, Device]) -> None:
    alice1, alice2, bob = trio
    message = send(alice1, [bob, alice2], "hello bob")
    assert "hello" not in str(message)
    assert {(c["user_id"], c["device_id"]) for c in message["encrypted"]["ciphertexts"]} == {
        ("bob", "phone"), ("alice", "laptop")}
    assert message["encrypted"]["sender_key"] == alice1.identity_key
    assert message["encrypted"]["ciphertexts"][0]["type"] == 0  # the first message of a session: pre-key
    for device in (bob, alice2):
        record = device.decrypt_message(message)
        assert record["payload"]["text"] == "hello bob" and record["sender_device_id"] == "phone"
        assert record["payload"]["type"] == "text" and record["source"] == "decrypted"
    reply = send(bob, [alice1, alice2], "hi alice")
    assert alice1.decrypt_message(reply)["payload"]["text"] == "hi alice"
    assert alice2.decrypt_message(reply)["payload"]["text"] == "hi alice"
    again = send(alice1, [bob, alice2], "after the reply")
    assert {c["device_id"]: c["type"] for c in again["encrypted"]["ciphertexts"]}["phone"] == 1  # session confirmed
    assert bob.decrypt_message(again)["payload"]["text"] == "after the reply"
    # Delivered again (a sync, a history page): the copy kept, not an error.
    assert bob.decrypt_message(message)["payload"]["text"] == "hello bob"


def test_a_tampered_ciphertext_is_refused_and_the_genuine_one_still_reads(trio: tuple[Device, Device, Device]) -> None:
    alice1, _alice2, bob = trio
    for first in (True, False):  # a pre-key message, then a normal one
        message = send(alice1, [bob], "attack at dawn")
        body = message["encrypted"]["ciphertexts"][0]["body"]
        flipped = body[:-12] + ("A" if body[-12] != "A" else "B") + body[-11:]
        tampered = {**message, "message_id": message["message_id"] + "t",
                    "encrypted": {**message["encrypted"], "ciphertexts": [
                        {**message["encrypted"]["ciphertexts"][0], "body": flipped}]}}
        with pytest.raises(DecryptionError) as refused:
            bob.decrypt_message(tampered)
        assert refused.value.reason == "tampered", first
        assert tampered["message_id"] not in bob.store.messages
        assert bob.decrypt_message(message)["payload"]["text"] == "attack at dawn"
        if first:
            bob.decrypt_message(send(alice1, [bob], "x"))
            alice1.decrypt_message(send(bob, [alice1], "ok"))
    garbage = send(alice1, [bob], "y")
    garbage["encrypted"]["ciphertexts"][0]["body"] = "not base64!"
    with pytest.raises(DecryptionError, match="tampered"):
        bob.decrypt_message(garbage)


def test_a_replayed_ciphertext_is_refused_even_after_a_restart(tmp_path: Path, trio: tuple[Device, Device, Device]) -> None:
    alice1, _alice2, bob = trio
    message = send(alice1, [bob], "pay 10 euros")
    assert bob.decrypt_message(message)["payload"]["text"] == "pay 10 euros"
    replay = {**message, "message_id": "m-replayed", "seq": message["seq"] + 1}
    with pytest.raises(DecryptionError) as refused:
        bob.decrypt_message(replay)
    assert refused.value.reason == "replayed" and refused.value.message_id == "m-replayed"
    reloaded = make(tmp_path, "bob", "phone")  # from its file: the same state
    with pytest.raises(DecryptionError, match="replayed"):
        reloaded.decrypt_message(replay)
    # Without the record of what was seen, Olm itself refuses: the message key was used and deleted.
    reloaded.store.seen_ciphertexts.clear()
    reloaded.store.seen_payloads.clear()
    with pytest.raises(DecryptionError, match="tampered"):
        reloaded.decrypt_message(replay)
    second = send(alice1, [bob], "second")
    bob.decrypt_message(second)
    with pytest.raises(DecryptionError, match="replayed"):
        bob.decrypt_message({**second, "message_id": "m-again"})


def test_the_envelope_is_bound_to_its_sender_and_conversation(trio: tuple[Device, Device, Device]) -> None:
    alice1, alice2, bob = trio
    moved = {**send(alice1, [bob], "for d_ab"), "conversation_id": "d_other"}
    with pytest.raises(DecryptionError, match="bad_payload"):
        bob.decrypt_message(moved)
    forged = {**send(alice1, [bob], "from alice"), "from_user_id": "mallory"}
    with pytest.raises(DecryptionError, match="unknown_sender"):
        bob.decrypt_message(forged)
    not_mine = send(alice1, [alice2], "to my laptop only")
    with pytest.raises(DecryptionError) as refused:
        bob.decrypt_message(not_mine)
    assert refused.value.reason == "not_for_this_device"


def test_keys_are_signed_and_checked(tmp_path: Path, trio: tuple[Device, Device, Device]) -> None:
    alice1, _alice2, bob = trio
    carol = make(tmp_path, "carol", "phone")
    forged = listing(carol)
    forged[0]["identity_key"] = bob.identity_key  # a server that lies about carol's keys
    devices, _ = alice1.check_devices(forged, ["carol"])
    assert devices == [] and "carol" not in alice1.store.pins
    alice1.check_devices(listing(carol), ["carol"])
    bad = claim(carol)
    bad["key"] = claim(bob)["key"]
    with pytest.raises(E2EError, match="not signed"):
        alice1.start_session(keys_of(carol), bad)
    # keys.publish data: every one-time key and the fallback key signed by the device's Ed25519 key.
    data = carol.keys_to_publish(10, True, True)
    assert len(data["one_time_keys"]) == 10 and data["fallback_key"]["key_id"]
    assert data["device_keys"]["identity_key"] == carol.identity_key


def test_a_changed_key_is_an_identity_change_and_unverifies(tmp_path: Path, trio: tuple[Device, Device, Device]) -> None:
    alice1, alice2, bob = trio
    before = alice1.safety_number("bob")
    assert before == bob.safety_number("alice") and len(before) == 60
    alice1.store.pins["bob"]["phone"]["verified"] = True
    bob_again = Device(E2EStore(tmp_path / "bob-reinstalled.e2e", KEY), "bob", "phone")  # new keys, same device id
    _devices, changes = alice1.check_devices(listing(alice2, bob_again), ["alice", "bob"])
    assert [(c.user_id, c.device_id, c.old_signing_key, c.new_signing_key) for c in changes] == [
        ("bob", "phone", bob.signing_key, bob_again.signing_key)]
    pin = alice1.store.pins["bob"]["phone"]
    assert pin["identity_changed"] and not pin["verified"] and pin["previous_signing_keys"] == [bob.signing_key]
    after = alice1.safety_number("bob")
    assert after != before and after[:30] == before[:30]  # alice's half ("alice" < "bob") is unchanged
    # A device that disappears from the listing is marked removed and leaves the safety number.
    alice1.check_devices(listing(bob_again), ["alice", "bob"])
    assert alice1.store.pins["alice"]["laptop"]["removed"]


def test_safety_number_test_vector_of_docs_security_md() -> None:
    def key(text: str) -> str:
        return b64encode(hashlib.sha256(text.encode()).digest())

    alice = [key("parley test alice phone"), key("parley test alice laptop")]
    bob = [key("parley test bob phone")]
    assert alice == ["CuLI4SEazwzoahrYwlsr6jYj1chcpNJqGuTSjryp1bM", "8pLych8ZcgrVSRZwB0089SyzgCYbmdMl9t8JPYqTuPE"]
    number = safety_number("alice-0001", alice, "bob-0002", bob)
    assert format_safety_number(number) == (
        "58089 33466 75253 93179 70519 62228 85615 87082 98875 51084 77481 14557")
    assert safety_number("bob-0002", bob, "alice-0001", alice[::-1]) == number  # same on both sides, any order
    assert safety_qr(number) == "parley-sn:1:" + number and parse_safety_qr(safety_qr(number)) == number
    replaced = safety_number("alice-0001", alice, "bob-0002", [key("parley test bob phone reinstalled")])
    assert format_safety_number(replaced) == (
        "58089 33466 75253 93179 70519 62228 43306 77685 95975 06226 76903 49314")
    with pytest.raises(E2EError):
        parse_safety_qr("parley-sn:2:" + number)
    doc = (Path(__file__).parents[2] / "docs" / "security.md").read_text()
    assert format_safety_number(number) in doc and format_safety_number(replaced) in doc


def test_files_are_encrypted_with_aes_gcm_and_checked() -> None:
    content = os.urandom(100_000)
    ciphertext, secret = encrypt_file(content)
    assert content not in ciphertext and len(ciphertext) == len(content) + 16
    assert decrypt_file(ciphertext, secret) == content
    with pytest.raises(E2EError, match="SHA-256"):
        decrypt_file(ciphertext[:-1] + bytes([ciphertext[-1] ^ 1]), secret)
    other, other_secret = encrypt_file(content)
    assert other != ciphertext and other_secret.key != secret.key  # a fresh key and nonce per file
    wrong_key = type(secret)(other_secret.key, secret.nonce, secret.sha256)
    with pytest.raises(E2EError, match="tampered"):
        decrypt_file(ciphertext, wrong_key)


def test_the_store_is_sealed_private_and_survives_a_restart(tmp_path: Path, trio: tuple[Device, Device, Device]) -> None:
    alice1, _alice2, bob = trio
    first = send(alice1, [bob], "remember me")
    bob.decrypt_message(first)
    path = tmp_path / "bob-phone.e2e"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"remember me" not in path.read_bytes() and bob.identity_key.encode() not in path.read_bytes()
    again = make(tmp_path, "bob", "phone")
    assert again.identity_key == bob.identity_key
    assert again.decrypt_message(first)["payload"]["text"] == "remember me"
    assert again.decrypt_message(send(alice1, [bob], "and go on"))["payload"]["text"] == "and go on"
    with pytest.raises(E2EError, match="wrong pickle key"):
        E2EStore(path, bytes(32))
    with pytest.raises(E2EError, match="belongs to"):
        Device(E2EStore(path, KEY), "bob", "tablet")
    # Without a key from the application: one is made, kept beside with mode 0600, and used again.
    own = E2EStore(tmp_path / "own.e2e")
    Device(own, "carol", "phone")
    assert stat.S_IMODE((tmp_path / "own.e2e.key").stat().st_mode) == 0o600
    assert E2EStore(tmp_path / "own.e2e").pickle_key == own.pickle_key


def test_a_new_device_reads_old_messages_only_once_one_of_mine_shares_them(
        tmp_path: Path, trio: tuple[Device, Device, Device]) -> None:
    alice1, alice2, bob = trio
    old = send(alice1, [bob, alice2], "before the tablet")
    bob.decrypt_message(old)
    alice2.decrypt_message(old)
    tablet = make(tmp_path, "alice", "tablet")
    introduce(alice1, alice2, bob, tablet)
    with pytest.raises(DecryptionError, match="not_for_this_device"):
        tablet.decrypt_message(old)
    payload = alice2.payload("", "history", batch="b", part=0, parts=1, items=list(alice2.store.messages.values()))
    entry = alice2.to_device(keys_of(tablet), payload)
    push = {"id": "dm1", "from_device_id": "laptop", "sent_at": "now", **{k: entry[k] for k in ("sender_key", "type", "body")}}
    opened = tablet.open_to_device(push)
    assert opened["type"] == "history" and tablet.import_shared(opened["items"]) == 1
    record = tablet.decrypt_message(old)
    assert record["payload"]["text"] == "before the tablet" and record["source"] == "shared"
    with pytest.raises(DecryptionError, match="replayed"):
        tablet.open_to_device({**push, "id": "dm2"})
    # Bob's device cannot pass itself off as one of alice's.
    forged = bob.to_device(keys_of(tablet), {**payload, "sender": {"user_id": "alice", "device_id": "laptop"}})
    with pytest.raises(DecryptionError, match="unknown_sender"):
        tablet.open_to_device({"id": "dm3", "from_device_id": "laptop", **{k: forged[k] for k in ("sender_key", "type", "body")}})


def test_the_web_clients_shorter_payloads_are_read(trio: tuple[Device, Device, Device]) -> None:
    """services/gateway/web/js/e2e.js writes {type, text?, file?, sticker_id?, voice?, mentions?}
    (no v, id, sender, conversation_id) and history as {type: "history", items: [{conversation_id,
    message_id, payload}]}: read as well, the fields that are there checked."""
    alice1, alice2, bob = trio
    web = {"type": "file", "text": "from the browser", "file": {"key": "k", "nonce": "n", "sha256": "s", "name": "a.png",
                                                              "content_type": "image/png", "size": 3}}
    message = {"message_id": "w1", "conversation_id": "d_ab", "seq": 900, "from_user_id": "alice", "to": {"user_id": "bob"},
               "sent_at": "now", "file": {"file_id": "f9", "name": "encrypted", "size": 19,
                                          "content_type": "application/octet-stream"},
               "encrypted": alice1.envelope(web, [keys_of(bob)])}
    record = bob.decrypt_message(message)
    assert record["payload"] == web and record["sender_device_id"] == "phone"
    with pytest.raises(DecryptionError, match="bad_payload"):
        bob.decrypt_message({**message, "message_id": "w2", "encrypted": alice1.envelope({"text": "no type"}, [keys_of(bob)])})
    entry = alice1.to_device(keys_of(alice2), {"type": "history", "items": [
        {"conversation_id": "d_ab", "message_id": "w3", "payload": {"type": "sticker", "sticker_id": "builtin:star"}},
        {"conversation_id": "d_ab", "message_id": "w4"}]})
    opened = alice2.open_to_device({"id": "dm", "from_device_id": "phone", **{k: entry[k] for k in ("sender_key", "type", "body")}})
    assert alice2.import_shared(opened["items"]) == 1 and alice2.store.messages["w3"]["payload"]["sticker_id"] == "builtin:star"
