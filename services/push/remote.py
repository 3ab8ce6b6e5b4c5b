"""What the push service asks of others: display names from auth (which owns users), and who is
connected now from presence (Redis, written by the gateways)."""
import logging
import time
from collections import OrderedDict

from shared.broker import RpcClient
from shared.contracts.auth import UsersGet
from shared.contracts.operations import AUTH_USERS_GET
from shared.logs import log_event
from shared.presence import Presence

log = logging.getLogger("parley.push")

NAMES_KEPT = 10_000
NAME_SECONDS = 60.0


class AuthNames:
    """Display names over `auth.users.get`, kept a minute (a chatty conversation asks for the
    same senders again and again). Auth away: the names it could not say are absent, and the
    notification says "Someone" rather than waiting."""

    def __init__(self, rpc: RpcClient):
        self.rpc = rpc
        self._kept: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def names(self, user_ids: list[str]) -> dict[str, str]:
        now = time.monotonic()
        found = {u: kept[1] for u in user_ids if (kept := self._kept.get(u)) is not None and kept[0] > now}
        missing = [u for u in dict.fromkeys(user_ids) if u not in found]
        if not missing:
            return found
        try:
            reply = await self.rpc.call(AUTH_USERS_GET, UsersGet(user_ids=missing))
        except Exception as exc:
            log_event(log, "push.names_unavailable", logging.WARNING, error=repr(exc))
            return found
        for profile in reply.users:
            found[profile.user_id] = profile.display_name
            self._kept[profile.user_id] = (now + NAME_SECONDS, profile.display_name)
            self._kept.move_to_end(profile.user_id)
        while len(self._kept) > NAMES_KEPT:
            self._kept.popitem(last=False)
        return found


class PresenceConnected:
    """The `Connected` port over presence: (user, device) of every live socket."""

    def __init__(self, presence: Presence):
        self.presence = presence

    async def devices_of(self, user_ids: list[str]) -> set[tuple[str, str]]:
        return {(s.user_id, s.device_id) for s in await self.presence.sockets_of(user_ids)}
