"""The per-user message.send rate, checked as a socket's frames arrive (before anything reaches chat)."""
import logging

from shared.redis_slots import REDIS_ERRORS

from shared.contracts.errors import ParleyError
from shared.ratelimit import CoalescedTakes, FailOpen, TokenBucket

log = logging.getLogger("parley.gateway")

# How long a message.send waits on the rate limiter in Redis before going through unchecked.
RATE_LIMIT_TIMEOUT_SECONDS = 0.5


class SendRate:
    def __init__(self, bucket: TokenBucket, rate_per_second: float):
        # One Redis call per turn of the loop for all the sockets' sends, not one per send, and
        # one timer per call (a timer per frame was ~1 % of the gateway at W = 10).
        self.tokens = CoalescedTakes(bucket, timeout=RATE_LIMIT_TIMEOUT_SECONDS)
        self.rate_per_second = rate_per_second
        self._outage = FailOpen("ratelimit", log)  # logged once per Redis outage, not per send

    async def exceeded(self, user_id: str) -> ParleyError | None:
        """Take one of the user's message.send tokens; the `rate_limited` error if none is left."""
        try:
            allowed = await self.tokens.take(user_id)
        except REDIS_ERRORS as exc:
            # Fail open: with Redis unreachable or slow, the send goes through unchecked. The
            # limit only shields chat from a flooding client (each socket stays bounded by
            # MAX_IN_FLIGHT_PER_SOCKET and one batch in flight meanwhile), while chat stores a message
            # without Redis (live pushes are best effort; sync catches up). Failing closed would
            # turn a Redis outage into nobody being able to send at all.
            self._outage.failed(exc)
            return None
        self._outage.worked()
        if allowed:
            return None
        rate = self.rate_per_second
        return ParleyError.rate_limited(f"sending faster than {rate:g} messages a second; slow down")
