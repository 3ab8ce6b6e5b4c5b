"""What chat's domain logic needs from the outside world, as small interfaces.

`Deliverer` sends pushes to whichever gateways hold the target devices (presence in Redis,
deliveries on RabbitMQ); `Profiles` resolves user ids through auth, which owns users.
"""
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from shared.contracts.auth import UserProfile
from shared.contracts.base import Contract
from shared.contracts.envelope import Push
from shared.contracts.files import FileMeta
from shared.contracts.wire import Delivery, DeviceAddress
from shared.logs import log_event
from shared.presence import DeviceSocket, Presence

log = logging.getLogger("parley.chat")

Publish = Callable[[str, Delivery], Awaitable[None]]  # (gateway_id, delivery)
ReportLost = Callable[[str], Awaitable[None]]  # (why): tells the gateways to resync their sockets
# At most one "deliveries lost" report per this many seconds: an outage fails every push.
REPORT_LOST_EVERY_SECONDS = 0.5


class Profiles(Protocol):
    async def get(self, user_ids: list[str]) -> dict[str, UserProfile]: ...


class Files(Protocol):
    async def info(self, file_id: str) -> FileMeta | None: ...


def push(event: str, data: Contract) -> Push:
    return Push(type=event, data=data.model_dump(mode="json"))


class Deliverer:
    def __init__(self, presence: Presence, publish: Publish, report_lost: ReportLost | None = None):
        self.presence = presence
        self.publish = publish
        self.report_lost = report_lost
        self._reported_at = -REPORT_LOST_EVERY_SECONDS

    async def to_users(
        self, user_ids: Iterable[str], pushes: list[Push], *, except_device: tuple[str, str | None] | None = None
    ) -> int:
        """Push to every live device of these users (but `except_device`); returns devices reached.

        Best effort: what is already stored must not fail for a push (Redis or a gateway
        being away); whoever missed it gets it from their cursor on the next bind.
        """
        try:
            return await self._to_users(list(dict.fromkeys(user_ids)), pushes, except_device)
        except Exception as exc:
            log_event(log, "push.failed", logging.WARNING, push_type=pushes[0].type if pushes else "", error=repr(exc))
            await self._report_lost(repr(exc))
            return 0

    async def _report_lost(self, why: str) -> None:
        """Have every gateway resync its sockets: a push that could not go out is above the
        devices' cursors, and a socket that stays open would otherwise see it only on its next
        bind. Reported after the failure, so the resync comes after it (best effort: with the
        broker away the gateways resync when it is back anyway)."""
        now = time.monotonic()
        if self.report_lost is None or now - self._reported_at < REPORT_LOST_EVERY_SECONDS:
            return
        self._reported_at = now
        try:
            await self.report_lost(why)
        except Exception as exc:
            log_event(log, "push.lost_report_failed", logging.WARNING, error=repr(exc))

    async def _to_users(
        self, user_ids: list[str], pushes: list[Push], except_device: tuple[str, str | None] | None
    ) -> int:
        sockets = await self.presence.sockets_of(user_ids)
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
