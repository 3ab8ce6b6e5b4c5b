"""Store-and-forward: what was sent while a device was away arrives on its next bind, in order."""
import asyncio

from tests.support.client import befriend, log_in_again, new_user, send_texts
from tests.support.waiting import eventually


async def test_500_messages_wait_for_an_offline_device_and_arrive_in_order(port: int, other_port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    await bob.close()

    # Pipelined (send_texts): the seqs below also say they were stored in the order sent.
    replies = await send_texts(alice, bob.user_id, [f"offline {i}" for i in range(500)])
    conversation_id = replies[0]["conversation_id"]
    assert [r["seq"] for r in replies] == list(range(1, 501))

    bob = await log_in_again(bob, other_port)
    received = []
    while True:
        push = await asyncio.wait_for(bob.pushes.get(), 30)
        if push["type"] == "sync.done":
            break
        if push["type"] == "message.new":
            received.append(push["data"])
    assert push["data"] == {"count": 500}
    assert [m["seq"] for m in received] == list(range(1, 501))
    assert [m["text"] for m in received] == [f"offline {i}" for i in range(500)]
    assert {m["conversation_id"] for m in received} == {conversation_id}

    # Acknowledge the first 200 only: the other 300 come again on the next bind, and only they.
    await bob.call("message.ack", {"conversation_id": conversation_id, "seq": 200})
    await bob.close()
    bob = await log_in_again(bob, port)
    assert await bob.wait_synced() == 300
    assert sorted(bob.inbox[conversation_id]) == list(range(201, 501))

    await bob.ack_all()
    await bob.close()
    bob = await log_in_again(bob, port)
    assert await bob.wait_synced() == 0
    assert bob.inbox == {}
    for client in (alice, bob):
        await client.close()


async def test_live_messages_during_sync_follow_it_in_order(port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    await bob.close()
    early = await send_texts(alice, bob.user_id, [f"early {i}" for i in range(300)])
    assert [r["seq"] for r in early] == list(range(1, 301))
    conversation_id = early[0]["conversation_id"]

    bob = await log_in_again(bob, port)
    late = [asyncio.create_task(alice.send_text(bob.user_id, f"late {i}")) for i in range(20)]
    await asyncio.gather(*late)
    await bob.wait_synced()
    await eventually(lambda: len(bob.inbox[conversation_id]) == 320, "the 300 synced and 20 live messages")
    assert sorted(bob.inbox[conversation_id]) == list(range(1, 321))
    for client in (alice, bob):
        await client.close()


async def test_each_device_has_its_own_cursor_and_sees_its_own_messages(port: int, other_port: int) -> None:
    alice, bob = await new_user(port, "phone"), await new_user(port, "phone")
    await befriend(alice, bob)
    alice_laptop = await log_in_again(alice, other_port, "laptop")
    await alice_laptop.wait_synced()

    sent = await alice.send_text(bob.user_id, "from my phone")
    conversation_id = sent["conversation_id"]
    # The sender's other device gets a copy; the sending device does not.
    copy = await alice_laptop.next_push("message.new")
    assert copy["text"] == "from my phone" and copy["seq"] == sent["seq"]
    assert await alice.no_push("message.new", within=1)
    assert (await bob.next_push("message.new"))["seq"] == 1

    await bob.ack_all()  # bob's phone has seq 1
    await bob.close()
    await alice.send_text(bob.user_id, "second")
    # A device seen for the first time starts at the highest cursor of the user's devices.
    bob_tablet = await log_in_again(bob, port, "tablet")
    assert await bob_tablet.wait_synced() == 1
    assert bob_tablet.texts(conversation_id) == ["second"]
    # The phone has its own cursor: it too gets "second" and nothing more.
    bob_phone = await log_in_again(bob, other_port, "phone")
    assert await bob_phone.wait_synced() == 1
    for client in (alice, alice_laptop, bob_tablet, bob_phone):
        await client.close()


async def test_same_client_msg_id_stores_one_message_and_returns_the_same_reply(port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    first = await alice.send_text(bob.user_id, "once", client_msg_id="retry-me")
    again = await alice.send_text(bob.user_id, "once", client_msg_id="retry-me")
    assert again == first
    after = await alice.send_text(bob.user_id, "next")
    assert after["seq"] == first["seq"] + 1
    history = await bob.call("history.fetch", {"conversation_id": first["conversation_id"]})
    assert [m["text"] for m in history["messages"]] == ["once", "next"]
    # Whatever the retries pushed, the user sees each message once.
    await eventually(lambda: len(bob.inbox[first["conversation_id"]]) == 2, "both messages pushed to bob")
    assert bob.texts(first["conversation_id"]) == ["once", "next"]
    # The id is the sender's: another sender may use it.
    mine = await bob.send_text(alice.user_id, "mine", client_msg_id="retry-me")
    assert mine["seq"] == after["seq"] + 1
    for client in (alice, bob):
        await client.close()
