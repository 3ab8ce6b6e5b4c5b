"""`calls.ice_servers`: the STUN and TURN servers a client gives RTCPeerConnection (docs/protocol.md,
"Calls"), answered by the gateway itself.

TURN credentials follow coturn's shared-secret scheme (the "TURN REST API", coturn's
`use-auth-secret` / `static-auth-secret`): the username is `<expiry unix time>:<user_id>`, the
password base64(HMAC-SHA1(secret, username)). coturn recomputes the HMAC from the username with the
same secret and refuses a username whose time has passed, so nothing is stored and no call to
coturn is made: the gateway and coturn share only the secret (PARLEY_TURN_SECRET, and coturn's
--static-auth-secret). Without TURN URLs or without a secret no TURN server is offered: STUN only
(PARLEY_STUN_URLS), or nothing at all, and calls still connect on one network.
"""
import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence

from shared.contracts.base import iso_from_timestamp
from shared.contracts.calls import IceServer, IceServersReply
from shared.logs import log_event
from shared.settings import Settings

log = logging.getLogger("parley.gateway")


def turn_password(secret: str, username: str) -> str:
    """coturn's password for `username` under the shared secret: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class IceServers:
    def __init__(
        self,
        stun_urls: Sequence[str],
        turn_urls: Sequence[str],
        turn_secret: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ):
        self.stun_urls = list(stun_urls)
        # TURN without a secret could not be logged into: leave it out rather than hand out URLs
        # every allocation on would fail.
        self.turn_urls = list(turn_urls) if turn_secret else []
        self.turn_secret = turn_secret
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> "IceServers":
        if settings.turn_urls and not settings.turn_secret:
            log_event(log, "ice.turn_without_secret", logging.WARNING,
                      message="PARLEY_TURN_URLS is set but PARLEY_TURN_SECRET is empty: TURN is not offered")
        return cls(settings.stun_urls, settings.turn_urls, settings.turn_secret, settings.turn_credential_ttl_seconds)

    def for_user(self, user_id: str) -> IceServersReply:
        servers = [IceServer(urls=self.stun_urls)] if self.stun_urls else []
        if not self.turn_urls:
            return IceServersReply(ice_servers=servers)
        expiry = int(self.clock()) + self.ttl_seconds
        username = f"{expiry}:{user_id}"
        servers.append(IceServer(urls=self.turn_urls, username=username, credential=turn_password(self.turn_secret, username)))
        return IceServersReply(ice_servers=servers, expires_at=iso_from_timestamp(expiry))
