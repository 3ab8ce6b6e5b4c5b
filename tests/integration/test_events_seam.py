"""A new subscriber attaches to `messages.stored` without touching chat's send path: an audit
counter, declared like any consumer, bound to the running stack's events, sees every message the
users were told is stored, exactly once, one event per batch, with who had it live."""
import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import aio_pika
import pytest

from shared.broker import Broker
from shared.contracts.events import MessageChanged, MessagesStored
from shared.service import Router, ServiceRunner
from shared.settings import Settings
from tests.support.client import befriend, new_user
from tests.support.waiting import eventually


class Audit:
    def __init__(self) -> None:
        self.batches: list[MessagesStored] = []
        self.changes: list[MessageChanged] = []

    def seen(self) -> Counter[tuple[str, int]]:
        return Counter((c.conversation_id, m.seq) for b in self.batches for c in b.conversations for m in c.messages)


@pytest.fixture
async def audit(settings: Settings) -> AsyncIterator[Audit]:
    """The subscriber: its own queue (`<ns>.audit.events`) on the stack's events exchange."""
    found = Audit()
    router = Router("audit")

    @router.event("messages.stored")
    async def count(event: MessagesStored) -> None:
        found.batches.append(event)

    @router.event("message.changed")
    async def note(event: MessageChanged) -> None:
        found.changes.append(event)

    broker = await Broker(settings).connect()
    runner = ServiceRunner(broker, router, settings)
    await runner.start()
    try:
        yield found
    finally:
        await runner.stop()
        await broker.close()
        connection = await aio_pika.connect(settings.amqp_url)
        async with connection:
            await (await connection.channel()).queue_delete(broker.names.events_queue("audit"))


async def test_every_stored_message_reaches_a_new_subscriber_once(audit: Audit, port: int, other_port: int) -> None:
    alice, bob, carol = await new_user(port, "phone"), await new_user(other_port), await new_user(port)
    await befriend(alice, bob)
    await befriend(alice, carol)
    await carol.close()  # offline: stored for her, reached nobody
    # Many in flight at once from two senders: the gateways batch them.
    replies = await asyncio.gather(
        *(alice.send_text(bob.user_id, f"to bob {i}") for i in range(30)),
        *(alice.send_text(carol.user_id, f"to carol {i}") for i in range(10)),
        *(bob.send_text(alice.user_id, f"to alice {i}") for i in range(20)),
    )
    told = Counter((r["conversation_id"], r["seq"]) for r in replies)

    def all_seen() -> bool:
        return set(audit.seen()) >= set(told)

    await eventually(all_seen, "every acknowledged message in a messages.stored event")
    assert audit.seen() == told  # each exactly once: no message twice, none that was not stored
    assert len(audit.batches) <= len(replies)  # one event per batch, batches of one or more
    to_carol = [c for b in audit.batches for c in b.conversations if carol.user_id in c.recipients]
    assert to_carol and all(c.reached == [] or {a.user_id for a in c.reached} == {alice.user_id} for c in to_carol)
    to_bob = [c for b in audit.batches for c in b.conversations if bob.user_id in c.recipients]
    assert any(a.user_id == bob.user_id for c in to_bob for a in c.reached)  # live on his socket

    first = replies[0]
    await alice.call("message.edit", {"message_id": first["message_id"], "text": "edited"})
    await eventually(lambda: audit.changes, "message.changed after the edit")
    assert (audit.changes[0].message_id, audit.changes[0].change) == (first["message_id"], "edited")
    for client in (alice, bob):
        await client.close()
