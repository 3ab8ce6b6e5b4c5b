"""What chat's domain logic needs from the outside world, as small interfaces.

`Deliverer` sends pushes to whichever gateways hold the target devices (presence in Redis,
deliveries on RabbitMQ); `Profiles` resolves user ids through auth, which owns users.
"""
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from shared.contracts.auth import UserProfile
from shared.contracts.base import Contract
from shared.contracts.envelope import Push
from shared.contracts.wire import Delivery, DeviceAddress
from shared.presence import DeviceSocket, Presence

Publish = Callable[[str, Delivery], Awaitable[None]]  # (gateway_id, delivery)


class Profiles(Protocol):
    async def get(self, user_ids: list[str]) -> dict[str, UserProfile]: ...


def push(event: str, data: Contract) -> Push:
    return Push(type=event, data=data.model_dump(mode="json"))


class Deliverer:
    def __init__(self, presence: Presence, publish: Publish):
        self.presence = presence
        self.publish = publish

    async def to_users(
        self, user_ids: Iterable[str], pushes: list[Push], *, except_device: tuple[str, str | None] | None = None
    ) -> int:
        """Push to every live device of these users (but `except_device`); returns devices reached."""
        sockets = await self.presence.sockets_of(list(dict.fromkeys(user_ids)))
        by_gateway: dict[str, list[DeviceAddress]] = defaultdict(list)
        for sock in sockets:
            if except_device and (sock.user_id, sock.device_id) == except_device:
                continue
            address = DeviceAddress(user_id=sock.user_id, device_id=sock.device_id)
            if address not in by_gateway[sock.gateway_id]:
                by_gateway[sock.gateway_id].append(address)
        for gateway_id, targets in by_gateway.items():
            await self.publish(gateway_id, Delivery(targets=targets, pushes=pushes))
        return sum(len(t) for t in by_gateway.values())

    async def to_socket(self, sock: DeviceSocket, pushes: list[Push], *, sync: bool) -> None:
        """Push to one socket only (a bind's sync stream)."""
        await self.publish(
            sock.gateway_id,
            Delivery(
                targets=[DeviceAddress(user_id=sock.user_id, device_id=sock.device_id)],
                conn_id=sock.conn_id,
                sync=sync,
                pushes=pushes,
            ),
        )
