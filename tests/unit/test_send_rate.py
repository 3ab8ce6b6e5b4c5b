"""The gateway's message.send rate check: refuses past the burst, lets sends through without Redis."""
import logging
import time


from services.gateway.connections import Connection, Session
from services.gateway.send_rate import SendRate
from shared.contracts.errors import ErrorCode
from shared.ratelimit import TokenBucket
from shared.stores import redis_client
from tests.unit.helpers import redis_namespace


def bound_socket(user_id: str) -> Connection:
    conn = Connection("c1", None, max_queued_bytes=1024)  # type: ignore[arg-type]  # no socket needed
    conn.session = Session(user_id, "phone", "t1", expires_at=2**31)
    return conn


async def test_past_the_burst_the_gateway_answers_rate_limited(redis_settings):
    """A token every 50 ms: quick, the fourth send is refused; on a slow machine what refilled
    meanwhile goes through first (counting on the fourth was a bet on four Redis round trips)."""
    async with redis_namespace(redis_settings) as (redis, namespace):
        send_rate = SendRate(TokenBucket(redis, namespace, "send", 20.0, 3), rate_per_second=20.0)
        conn = bound_socket("u_alice")
        start = time.monotonic()
        allowed = 0
        while (refused := await send_rate.exceeded(conn.session.user_id)) is None:
            allowed += 1
            assert allowed < 1000, "never refused"
        assert 3 <= allowed <= 3 + 20.0 * (time.monotonic() - start)  # quick, 3
        assert refused.code == ErrorCode.RATE_LIMITED
        assert refused.message == "sending faster than 20 messages a second; slow down"
        assert await send_rate.exceeded(bound_socket("u_bob").session.user_id) is None


async def test_without_redis_sends_go_through_and_the_outage_is_logged_once(redis_settings, caplog):
    """One Redis or a cluster client (whose "no node reachable" is not a RedisError) away."""
    # Nothing listens on port 1 (a port free a moment ago may have been taken since).
    settings = redis_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    nowhere = redis_client(settings)
    send_rate = SendRate(TokenBucket(nowhere, settings.namespace, "send", 1.0, 1), settings.send_rate_per_second)
    conn = bound_socket("u_alice")
    try:
        with caplog.at_level(logging.WARNING, logger="parley.gateway"):
            assert [await send_rate.exceeded(conn.session.user_id) for _ in range(5)] == [None] * 5
        assert [r.levelno for r in caplog.records if "ratelimit.unavailable" in r.getMessage()] == [logging.WARNING]
    finally:
        await nowhere.aclose()
