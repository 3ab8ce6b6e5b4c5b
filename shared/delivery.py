"""Pushes to users' devices: `Deliverer` sends them to whichever gateways hold the target
devices (presence in Redis, deliveries on RabbitMQ), many fan-outs in one broker message per
gateway. Any service that pushes (chat, calls) uses it.
"""
import asyncio
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from typing import Protocol

from shared.contracts.base import Contract
from shared.contracts.batches import Deliveries
from shared.contracts.envelope import Push
from shared.contracts.wire import Delivery, DeviceAddress
from shared.logs import log_event
from shared.presence import DeviceSocket

log = logging.getLogger("parley.delivery")

Publish = Callable[[str, Delivery | Deliveries], Awaitable[None]]  # (gateway_id, what for its sockets)
ReportLost = Callable[[str], Awaitable[None]]  # (why): tells the gateways to resync their sockets
# At most one "deliveries lost" report per this many seconds: an outage fails every push.
REPORT_LOST_EVERY_SECONDS = 0.5


class Presence(Protocol):
    """Where users' devices are connected (shared/presence.py)."""

    async def sockets_of(self, user_ids: list[str]) -> list[DeviceSocket]: ...


@functools.lru_cache(maxsize=65536)
def device_address(user_id: str, device_id: str) -> DeviceAddress:
    """A device's address, made once while it is pushed to often (frozen: one serves every push;
    a model per push per device was 9 % of chat's CPU: issue 26)."""
    return DeviceAddress(user_id=user_id, device_id=device_id)


def push(event: str, data: Contract) -> Push:
    return Push(type=event, data=data.model_dump(mode="json"))


@dataclass(frozen=True)
class Fanout:
    """Pushes for every live device of some users, but one (the sender's own)."""

    user_ids: Sequence[str]
    pushes: list[Push]
    except_device: tuple[str, str | None] | None = None


class Deliverer:
    def __init__(self, presence: Presence, publish: Publish, report_lost: ReportLost | None = None):
        self.presence = presence
        self.publish = publish
        self.report_lost = report_lost
        self._reported_at = -REPORT_LOST_EVERY_SECONDS

    async def to_users(
        self, user_ids: Iterable[str], pushes: list[Push], *, except_device: tuple[str, str | None] | None = None
    ) -> int:
        """Push to every live device of these users (but `except_device`); returns devices reached."""
        (reached,) = await self.fan_out([Fanout(list(user_ids), pushes, except_device)])
        return len(reached)

    async def fan_out(self, fanouts: list[Fanout]) -> list[list[DeviceAddress]]:
        """Many fan-outs with one presence read, and one broker message per gateway; for each
        fan-out, the devices it reached (handed to the gateway holding their socket).

        Best effort: what is already stored must not fail for a push (Redis or a gateway being
        away); whoever missed it gets it from their cursor on the next bind, and the gateways are
        told to resync their sockets. Devices of a gateway that could not be reached are not
        counted as reached.
        """
        if not fanouts:
            return []
        try:
            return await self._fan_out(fanouts)
        except Exception as exc:  # presence away: nothing was handed out
            await self._failed(fanouts, exc)
            return [[] for _ in fanouts]

    async def _failed(self, fanouts: list[Fanout], exc: BaseException) -> None:
        kind = fanouts[0].pushes[0].type if fanouts[0].pushes else ""
        log_event(log, "push.failed", logging.WARNING, push_type=kind, error=repr(exc))
        await self._report_lost(repr(exc))

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

    async def _fan_out(self, fanouts: list[Fanout]) -> list[list[DeviceAddress]]:
        users = list(dict.fromkeys(u for f in fanouts for u in f.user_ids))
        sockets_of: dict[str, list[DeviceSocket]] = defaultdict(list)
        for sock in await self.presence.sockets_of(users):
            sockets_of[sock.user_id].append(sock)
        # In fan-out order per gateway: a conversation's pushes reach each socket in seq order.
        by_gateway: dict[str, list[Delivery]] = defaultdict(list)
        targets_of: list[dict[str, list[DeviceAddress]]] = []
        for fanout in fanouts:
            # Per gateway, its devices once each (keyed by (user, device): no model compared).
            devices: dict[str, dict[tuple[str, str], DeviceAddress]] = defaultdict(dict)
            for user_id in dict.fromkeys(fanout.user_ids):
                for sock in sockets_of.get(user_id, ()):
                    key = (sock.user_id, sock.device_id)
                    if key == fanout.except_device:
                        continue
                    on_gateway = devices[sock.gateway_id]
                    if key not in on_gateway:
                        on_gateway[key] = device_address(*key)
            targets = {gateway_id: list(on_gateway.values()) for gateway_id, on_gateway in devices.items()}
            for gateway_id, addresses in targets.items():
                by_gateway[gateway_id].append(Delivery(targets=addresses, pushes=fanout.pushes))
            targets_of.append(targets)
        gateways = list(by_gateway)
        results = await asyncio.gather(
            *(self.publish(g, by_gateway[g][0] if len(by_gateway[g]) == 1 else Deliveries(items=by_gateway[g]))
              for g in gateways),
            return_exceptions=True,
        )
        failed = {g for g, result in zip(gateways, results, strict=True) if isinstance(result, BaseException)}
        if failed:
            await self._failed(fanouts, next(r for r in results if isinstance(r, BaseException)))
        return [
            [address for gateway_id, addresses in targets.items() if gateway_id not in failed for address in addresses]
            for targets in targets_of
        ]

    async def to_device(self, user_id: str, device_id: str, pushes: list[Push]) -> int:
        """Push to one device of a user, wherever it is connected (a call's signalling); returns
        the sockets reached. Best effort, like fan_out."""
        return await self.to_devices({(user_id, device_id): pushes})

    async def to_devices(self, pushes_of: Mapping[tuple[str, str], list[Push]]) -> int:
        """Push to each (user_id, device_id) its own pushes, wherever it is connected (a room key
        shared with a group's devices): one presence read, one broker message per gateway;
        returns the sockets reached. Best effort, like fan_out."""
        try:
            users = list(dict.fromkeys(user_id for user_id, _ in pushes_of))
            socks = [s for s in await self.presence.sockets_of(users) if (s.user_id, s.device_id) in pushes_of]
            by_gateway: dict[str, dict[tuple[str, str], Delivery]] = defaultdict(dict)
            for sock in socks:
                key = (sock.user_id, sock.device_id)
                by_gateway[sock.gateway_id][key] = Delivery(targets=[device_address(*key)], pushes=pushes_of[key])
            for gateway_id, deliveries in by_gateway.items():
                items = list(deliveries.values())
                await self.publish(gateway_id, items[0] if len(items) == 1 else Deliveries(items=items))
        except Exception as exc:
            kind = next((p[0].type for p in pushes_of.values() if p), "")
            log_event(log, "push.failed", logging.WARNING, push_type=kind, error=repr(exc))
            return 0
        return len(socks)

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
