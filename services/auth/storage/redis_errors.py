"""Redis's errors as the domain's outcome: `Unreachable` (from the driver's error)."""
from collections.abc import Iterator
from contextlib import contextmanager

from shared.redis_slots import REDIS_ERRORS

from services.auth.domain.ports import Unreachable


@contextmanager
def reachable() -> Iterator[None]:
    """Around a Redis call: a refused, failing or timed-out Redis raises Unreachable."""
    try:
        yield
    except REDIS_ERRORS as exc:
        raise Unreachable(repr(exc)) from exc
