"""/readyz: each backend the gateway needs → "ok" or what is wrong, within READINESS_SECONDS."""
import asyncio

from shared.redis_slots import RedisClient

from shared.broker import Broker, RpcClient
from shared.contracts.base import Empty
from shared.contracts.errors import ParleyError
from shared.contracts.operations import OPERATIONS, SERVICES

# /readyz answers within this, whichever backend is away (each check gets it at most).
READINESS_SECONDS = 1.5


class Readiness:
    def __init__(self, broker: Broker, redis: RedisClient, rpc: RpcClient):
        self.broker = broker
        self.redis = redis
        self.rpc = rpc

    async def checks(self) -> dict[str, str]:
        """Each dependency → "ok" or what is wrong, within READINESS_SECONDS whatever is away.

        RabbitMQ counts as up only while the connection is (a robust connection that is
        reconnecting is not closed, but nothing goes through it); MongoDB through each service's
        health operation, which pings it.
        """
        checks: dict[str, str] = {
            "rabbitmq": "ok" if self.broker.connected else "unreachable (reconnecting)",
        }

        async def ping_redis() -> None:
            await self.redis.ping()

        async def ask(service: str) -> None:
            if not self.broker.connected:
                raise ParleyError.unavailable("RabbitMQ is unreachable")
            await self.rpc.call(OPERATIONS[f"{service}.health"], Empty())

        names = ["redis", *SERVICES]
        answers = await asyncio.gather(
            asyncio.wait_for(ping_redis(), READINESS_SECONDS),
            *(asyncio.wait_for(ask(s), READINESS_SECONDS) for s in SERVICES),
            return_exceptions=True,
        )
        for name, answer in zip(names, answers, strict=True):
            if not isinstance(answer, BaseException):
                checks[name] = "ok"
            elif isinstance(answer, TimeoutError):
                checks[name] = f"no answer within {READINESS_SECONDS:g} s"
            elif isinstance(answer, ParleyError):
                checks[name] = answer.message
            else:
                checks[name] = f"unreachable: {answer!r}"
        return checks
