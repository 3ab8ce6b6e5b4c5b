"""Who may open a socket here, and how many: Origin, caps per client address and per user.

Browsers send an Origin on every WebSocket; a page on another site could otherwise open a
socket to the gateway in its visitor's name. Only the gateway's own host and the configured
`allowed_origins` are accepted (a client that sends no Origin is not a browser, and the
Origin check is not what protects it). Caps keep one address from holding thousands of
sockets (unbound ones above all: they cost memory and hold no user to throttle) and one user
from holding more than a phone-and-laptop's worth; a socket that never logs in is closed at
its login deadline. Counts are this gateway's own: each replica bounds what it holds.
"""
from collections import Counter
from collections.abc import Mapping
from urllib.parse import urlsplit

from shared.settings import Settings


def client_address(peer: tuple[str, int] | None, headers: Mapping[str, str], trust_forwarded_for: bool) -> str:
    """The client's IP: the TCP peer, or behind our own proxy the address it appended last."""
    if trust_forwarded_for and (forwarded := headers.get("x-forwarded-for")):
        return forwarded.split(",")[-1].strip()
    return peer[0] if peer else "unknown"


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """Same host as the page's gateway, or listed; no Origin at all is not a browser."""
    if origin is None:
        return True
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc.lower() == (host or "").lower()


class Admission:
    """Sockets open per address (and those not logged in yet) and bound sockets per user."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.open_by_address: Counter[str] = Counter()
        self.unbound_by_address: Counter[str] = Counter()
        self.bound_by_user: Counter[str] = Counter()

    def refusal(self, address: str) -> str | None:
        """Why a new socket from `address` is refused, or None."""
        if self.open_by_address[address] >= self.settings.ws_max_sockets_per_address:
            return "too many sockets from this address"
        if self.unbound_by_address[address] >= self.settings.ws_max_unbound_per_address:
            return "too many sockets from this address that have not logged in"
        return None

    def opened(self, address: str) -> None:
        self.open_by_address[address] += 1
        self.unbound_by_address[address] += 1

    def may_bind(self, user_id: str) -> bool:
        return self.bound_by_user[user_id] < self.settings.ws_max_sockets_per_user

    def bound(self, address: str, user_id: str) -> None:
        _decrement(self.unbound_by_address, address)
        self.bound_by_user[user_id] += 1

    def unbound(self, address: str, user_id: str) -> None:
        _decrement(self.bound_by_user, user_id)
        self.unbound_by_address[address] += 1

    def closed(self, address: str, user_id: str | None) -> None:
        """A socket went away: bound to `user_id`, or never (None)."""
        _decrement(self.open_by_address, address)
        if user_id is None:
            _decrement(self.unbound_by_address, address)
        else:
            _decrement(self.bound_by_user, user_id)


def _decrement(counts: Counter[str], key: str) -> None:
    """Count down, dropping the key at zero (so the counters hold only what is open)."""
    if counts[key] <= 1:
        counts.pop(key, None)
    else:
        counts[key] -= 1
