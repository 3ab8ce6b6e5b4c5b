"""Services with declared parts (shared/declared.py): parts made in order or given, stores'
indexes ensured, bindings read into the router the runner consumes, requests through dispatch."""
import pytest

from shared.contracts.auth import UserSearch, UserSearchReply
from shared.contracts.base import Empty
from shared.contracts.chat import PresenceChanged
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.wire import Caller
from shared.declared import Runtime, Service, ask, event, operation, part, periodic
from shared.stores import redis_client


class Store:
    def __init__(self, label: str):
        self.label = label
        self.indexed = False

    async def ensure_indexes(self) -> None:
        self.indexed = True


class Searcher:
    def __init__(self, store: Store):
        self.store = store


class Example(Service):
    name = "auth"
    store = part(lambda rt, s: Store("made"))
    searcher = part(lambda rt, s: Searcher(s.store))  # made from the part declared before it
    remote = part(lambda rt, s: rt.rpc())

    @operation("users.search")
    async def search(self, request: UserSearch, caller: Caller) -> UserSearchReply:
        if request.query == "refused":
            raise ParleyError.forbidden("no")
        return UserSearchReply(users=[])

    @event("presence.changed")
    async def on_presence(self, changed: PresenceChanged) -> None:
        return None

    @periodic("tidy", every=lambda settings: settings.presence_sweep_seconds, once_across_replicas=True)
    async def tidy(self) -> None:
        return None


@pytest.fixture
async def rt(db, settings):
    redis = redis_client(settings)
    yield Runtime(settings, db, redis)
    await redis.aclose()


async def test_parts_are_made_in_order_or_given_and_stores_are_indexed(rt):
    service = await Example.build(rt, remote="a stand-in")
    assert service.store.label == "made" and service.store.indexed
    assert service.searcher.store is service.store
    assert service.remote == "a stand-in"
    given = Store("given")
    assert (await Example.build(rt, store=given, remote=None)).searcher.store is given
    assert not given.indexed  # a given part is the test's: it was made as the test wants


async def test_a_part_that_needs_the_broker_says_so_outside_a_service_process(rt):
    with pytest.raises(LookupError, match="give it to Service.build"):
        await Example.build(rt)


async def test_an_unknown_part_is_a_mistake(rt):
    with pytest.raises(TypeError, match="no part named strore"):
        await Example.build(rt, remote=None, strore=Store("typo"))


async def test_the_router_holds_what_the_class_binds(rt):
    router = (await Example.build(rt, remote=None)).router()
    assert {r.operation.name for r in router.routes.values()} == {"users.search", "auth.health"}
    assert set(router.events) == {"presence.changed"}
    (job,) = router.periodics
    assert (job.name, job.every, job.once_across_replicas) == ("tidy", rt.settings.presence_sweep_seconds, True)


async def test_ask_goes_through_dispatch_validation_first(rt):
    service = await Example.build(rt, remote=None)
    caller = Caller(request_id="r1", user_id="u_alice")
    assert await ask(service, "users.search", {"query": "al"}, caller) == UserSearchReply(users=[])
    with pytest.raises(ParleyError) as bad:
        await ask(service, "users.search", {"query": "al", "extra": 1}, caller)
    assert bad.value.code == ErrorCode.BAD_REQUEST
    with pytest.raises(ParleyError) as refused:
        await ask(service, "users.search", {"query": "refused"}, caller)
    assert refused.value.code == ErrorCode.FORBIDDEN
    assert await ask(service, "auth.health", {}, caller) == Empty()
