"""shared/presence.py on real Redis: which gateway holds which device, and who went away.

Two views of the same keys: `presence` binds sockets that live a minute (no step of a test
outlives them, however slow the machine), `brief` binds sockets that live 0.4 s, for the tests
of expiry, which wait for that expiry itself rather than sleep a fixed time past it. (One
lifetime of 0.4 s for all was a bet that every step between a bind and its check takes less.)
"""
import pytest

from shared.presence import DeviceSocket, Presence
from tests.support.waiting import eventually
from tests.unit.helpers import redis_namespace


TTL = 75  # entries live 80 % of it: a minute
BRIEF_TTL = 0.5  # 0.4 s

ALICE_PHONE = DeviceSocket("u_alice", "phone", "gw1", "c1")
ALICE_LAPTOP = DeviceSocket("u_alice", "laptop", "gw2", "c2")
BOB_PHONE = DeviceSocket("u_bob", "phone", "gw1", "c3")


@pytest.fixture
async def both(redis_settings):
    async with redis_namespace(redis_settings) as (redis, namespace):
        yield Presence(redis, namespace, ttl_seconds=TTL), Presence(redis, namespace, ttl_seconds=BRIEF_TTL)


@pytest.fixture
def presence(both) -> Presence:
    return both[0]


@pytest.fixture
def brief(both) -> Presence:
    return both[1]


async def expired(presence: Presence, *user_ids: str) -> None:
    """Wait until none of these users' sockets is live any more."""

    async def none_live() -> bool:
        return await presence.sockets_of(list(user_ids)) == []

    await eventually(none_live, f"the sockets of {', '.join(user_ids)} expired")


async def online(presence, user_id):
    return (await presence.status_of([user_id]))[user_id][0]


async def test_first_device_brings_the_user_online_the_second_does_not(presence):
    assert await presence.bind(ALICE_PHONE) is True
    assert await presence.bind(ALICE_LAPTOP) is False
    assert await online(presence, "u_alice")
    assert await presence.bind(BOB_PHONE) is True  # users are counted apart


async def test_unbind_reports_only_the_last_device(presence):
    await presence.bind(ALICE_PHONE)
    await presence.bind(ALICE_LAPTOP)
    assert (await presence.status_of(["u_alice"]))["u_alice"] == (True, None)

    assert await presence.unbind(ALICE_PHONE) is None
    assert await online(presence, "u_alice")
    went = await presence.unbind(ALICE_LAPTOP)  # the last one: their new last_seen

    assert went is not None and went.endswith("Z")
    assert (await presence.status_of(["u_alice"]))["u_alice"] == (False, went)


async def test_unbinding_an_unknown_socket_does_not_report_offline(presence):
    assert await presence.unbind(ALICE_PHONE) is None


async def test_sockets_of_lists_live_sockets_with_their_gateways(presence):
    for sock in (ALICE_PHONE, ALICE_LAPTOP, BOB_PHONE):
        await presence.bind(sock)
    assert set(await presence.sockets_of(["u_alice", "u_bob", "u_carol"])) == {ALICE_PHONE, ALICE_LAPTOP, BOB_PHONE}
    assert set(await presence.sockets_of(["u_alice"])) == {ALICE_PHONE, ALICE_LAPTOP}
    assert await presence.sockets_of([]) == []
    await presence.unbind(ALICE_PHONE)
    assert await presence.sockets_of(["u_alice"]) == [ALICE_LAPTOP]


async def test_a_device_id_containing_the_separator_survives_the_round_trip(presence):
    odd = DeviceSocket("u_x", "my|phone|", "gw-1", "c9")  # device ids are the client's; "|" is allowed
    await presence.bind(odd)
    assert await presence.sockets_of(["u_x"]) == [odd]


async def test_expired_sockets_are_not_live_and_are_swept_once(presence, brief):
    await brief.bind(ALICE_PHONE)
    await brief.bind(BOB_PHONE)

    await expired(presence, "u_alice", "u_bob")  # nothing is delivered to them
    # Friends were told "online" and nothing else yet: the listing agrees until the sweep says otherwise.
    assert await online(presence, "u_alice")
    swept = dict(await presence.sweep())
    assert sorted(swept) == ["u_alice", "u_bob"]
    assert await presence.sweep() == []
    assert (await presence.status_of(["u_alice"]))["u_alice"] == (False, swept["u_alice"])  # last_seen kept


async def test_a_user_whose_devices_all_expired_is_reported_once(presence, brief):
    """A gateway holding both of a user's devices dies: one `offline`, not one per device."""
    await brief.bind(ALICE_PHONE)
    await brief.bind(DeviceSocket("u_alice", "laptop", "gw1", "c2"))
    await expired(presence, "u_alice")

    assert [user for user, _ in await presence.sweep()] == ["u_alice"]
    assert await presence.sweep() == []


async def test_sweep_does_not_report_a_user_with_a_live_device_left(presence, brief):
    await brief.bind(ALICE_PHONE)
    await expired(presence, "u_alice")
    await presence.bind(ALICE_LAPTOP)  # fresh, on another gateway

    assert await presence.sweep() == []
    assert await presence.sockets_of(["u_alice"]) == [ALICE_LAPTOP]


async def test_sweep_leaves_live_sockets_alone(presence):
    await presence.bind(ALICE_PHONE)
    assert await presence.sweep() == []
    assert await presence.sockets_of(["u_alice"]) == [ALICE_PHONE]


async def test_refresh_keeps_a_socket_alive_and_returns_those_already_swept(presence, brief):
    await brief.bind(ALICE_PHONE)
    await brief.bind(BOB_PHONE)
    assert await presence.refresh([ALICE_PHONE]) == []  # alice's now lives a minute from here
    await expired(presence, "u_bob")  # bound after alice: her first expiry has passed too
    assert [user for user, _ in await presence.sweep()] == ["u_bob"]
    assert await presence.sockets_of(["u_alice", "u_bob"]) == [ALICE_PHONE]

    dropped = await presence.refresh([ALICE_PHONE, BOB_PHONE])

    assert dropped == [BOB_PHONE]
    assert await presence.sockets_of(["u_bob"]) == []  # refresh does not resurrect it
    assert await presence.refresh([]) == []
