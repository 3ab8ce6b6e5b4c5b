"""Pushes from chat: this gateway's own queue on `<ns>.deliver`, handed to the hub's sockets."""
import logging

import orjson
from aio_pika.abc import AbstractIncomingMessage

from services.gateway.connections import Hub
from services.gateway.sessions import PendingResync
from shared.broker import DELIVERIES, Broker
from shared.logs import log_event

log = logging.getLogger("parley.gateway")

# Deliveries taken from the broker ahead of being handed to the sockets.
DELIVER_PREFETCH = 2000


class DeliveryConsumer:
    def __init__(self, broker: Broker, gateway_id: str, hub: Hub, resync: PendingResync):
        self.broker = broker
        self.gateway_id = gateway_id
        self.hub = hub
        self.resync = resync

    async def start(self) -> None:
        """This gateway's exclusive queue (gone with it), bound to the Broker's exchanges by name."""
        names = self.broker.names
        channel = await self.broker.channel(prefetch=DELIVER_PREFETCH)
        queue = await channel.declare_queue(names.deliver_queue(self.gateway_id), exclusive=True)
        self.broker.exclusive_queues.add(queue.name)
        await queue.bind(names.deliver, self.gateway_id)
        # chat's "pushes were lost" reports come on the same queue (Deliverer._report_lost).
        await queue.bind(names.events, "deliveries.lost")
        await queue.consume(self.on_message, no_ack=True)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        if message.exchange == self.broker.names.events:  # deliveries.lost: resync, on the next tick
            self.resync.reason = "chat could not push"
            return
        # Read as plain JSON, not through the Delivery models: chat built and checked them, and the
        # pushes' data only passes through here (its model round trip was 5 % of the gateway).
        try:
            body = orjson.loads(message.body)
            for delivery in body["items"] if message.type == DELIVERIES else (body,):
                self.hub.dispatch(delivery)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            log_event(log, "delivery.malformed", logging.ERROR, error=repr(exc))
