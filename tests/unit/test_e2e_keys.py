"""services/auth/domain/keys.py, the key directory, on real stores (MongoDB-wire, Redis):
signatures checked before anything is stored, each one-time key handed out once even to
concurrent claims, the fallback after them, the limits, keys.low and keys.changed."""
import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import pytest

from services.auth.domain import keys
from services.auth.domain.keys import ClaimLimit, KeyParts
from services.auth.storage.keys import MongoKeyStore
from services.auth.storage.limits import RedisRateBucket
from services.auth.storage.users import MongoUserStore
from shared.contracts import e2e
from shared.contracts.envelope import Push
from shared.contracts.errors import ErrorCode, ParleyError
from tests.support.fake_olm import FakeDevice, b64
from tests.unit.helpers import redis_namespace

NOW = datetime(2026, 12, 7, tzinfo=timezone.utc)
A, B = "u_alice", "u_bob"


class Recorded:
    """The ports auth tells through: keys.changed events, and pushes to one device."""

    def __init__(self) -> None:
        self.changes: list[e2e.KeysChanged] = []
        self.pushed: list[tuple[str, str, Push]] = []

    async def changed(self, change: e2e.KeysChanged) -> None:
        self.changes.append(change)

    async def to_device(self, user_id: str, device_id: str, pushes: list[Push]) -> int:
        self.pushed += [(user_id, device_id, p) for p in pushes]
        return 1


@pytest.fixture
async def world(db: Any, settings: Any) -> AsyncIterator[tuple[KeyParts, Recorded]]:
    async with redis_namespace(settings) as (redis, namespace):
        store, users, told = MongoKeyStore(db), MongoUserStore(db), Recorded()
        await store.ensure_indexes()
        await users.ensure_indexes()
        for user in (A, B):
            await users.insert(user, user.removeprefix("u_"), user, "hash", NOW)
        claims = ClaimLimit(RedisRateBucket(redis, namespace, "keyclaim", 1.0, 10))
        yield KeyParts(keys=store, users=users, events=told, pushes=told, claims=claims), told


async def publish(parts: KeyParts, device: FakeDevice, data: dict[str, Any]) -> e2e.KeysPublishReply:
    return await keys.publish(e2e.KeysPublish.model_validate(data), device.user_id, device.device_id, NOW, parts)


async def refused(awaitable: Any) -> ParleyError:
    with pytest.raises(ParleyError) as caught:
        await awaitable
    return caught.value


def claim_of(*devices: tuple[str, str]) -> e2e.KeysClaim:
    return e2e.KeysClaim(devices=[e2e.DeviceRef(user_id=u, device_id=d) for u, d in devices])


async def test_every_signature_is_checked_and_a_bad_one_stores_nothing(world: Any) -> None:
    parts, told = world
    device = FakeDevice(A, "phone")
    forged = device.publish(one_time=2, fallback=True)
    forged["device_keys"]["signature"] = b64(bytes(64))
    error = await refused(publish(parts, device, forged))
    assert error.code == ErrorCode.BAD_REQUEST and error.message.startswith("data.device_keys.signature")
    # Signed for another device (the signed text names user and device): refused too.
    elsewhere = FakeDevice(A, "laptop")
    elsewhere.signing, elsewhere.signing_key = device.signing, device.signing_key
    moved = device.publish()
    moved["one_time_keys"] = elsewhere.one_time_keys(1)
    assert (await refused(publish(parts, device, moved))).message.startswith("data.one_time_keys[0].signature")
    wrong_kind = device.publish()
    wrong_kind["fallback_key"] = device.signed_key("one_time_key")  # a one-time key's signature
    assert (await refused(publish(parts, device, wrong_kind))).message.startswith("data.fallback_key.signature")
    assert await parts.keys.devices_of([A]) == [] and told.changes == []
    first = await refused(publish(parts, device, {"one_time_keys": device.one_time_keys(1)}))
    assert first.code == ErrorCode.BAD_REQUEST and "device_keys" in first.message


async def test_a_device_replaced_drops_its_unclaimed_keys_and_is_told_once(world: Any) -> None:
    parts, told = world
    device = FakeDevice(A, "phone")
    assert (await publish(parts, device, device.publish(one_time=5))).one_time_key_count == 5
    assert (await publish(parts, device, device.publish())).one_time_key_count == 5  # the same keys again
    reinstalled = FakeDevice(A, "phone")
    assert (await publish(parts, reinstalled, reinstalled.publish(one_time=1))).one_time_key_count == 1
    assert [c.change for c in told.changes] == ["added", "replaced"]
    await keys.remove(A, "phone", parts)
    await keys.remove(A, "phone", parts)  # again: nothing to tell
    assert [c.change for c in told.changes] == ["added", "replaced", "removed"]
    assert await parts.keys.count_one_time_keys(A, "phone") == 0


async def test_at_most_200_unclaimed_keys_and_a_key_id_keeps_its_key(world: Any) -> None:
    parts, _ = world
    device = FakeDevice(A, "phone")
    batch = device.one_time_keys(100)
    await publish(parts, device, device.publish() | {"one_time_keys": batch})
    assert (await publish(parts, device, {"one_time_keys": batch[:10]})).one_time_key_count == 100  # a retry
    other = device.signed_key(key_id=batch[0]["key_id"])
    assert (await refused(publish(parts, device, {"one_time_keys": [other]}))).code == ErrorCode.CONFLICT
    await publish(parts, device, {"one_time_keys": device.one_time_keys(100)})
    over = await refused(publish(parts, device, {"one_time_keys": device.one_time_keys(1)}))
    assert over.code == ErrorCode.CONFLICT and "200" in over.message
    with pytest.raises(ValueError):  # one request names a key_id once
        e2e.KeysPublish.model_validate({"one_time_keys": [batch[0], batch[0]]})


async def test_concurrent_claims_get_each_one_time_key_once_then_the_fallback(world: Any) -> None:
    parts, told = world
    device = FakeDevice(A, "phone")
    data = device.publish(one_time=6, fallback=True)
    await publish(parts, device, data)
    got = await asyncio.gather(*(keys.claim(claim_of((A, "phone")), B, parts) for _ in range(8)))
    handed = [reply.keys[0] for reply in got]
    one_time = [k.key_id for k in handed if not k.fallback]
    assert sorted(one_time) == sorted(k["key_id"] for k in data["one_time_keys"])  # each once
    assert [k.key_id for k in handed if k.fallback] == [data["fallback_key"]["key_id"]] * 2
    lows = [p.data["one_time_key_count"] for user, dev, p in told.pushed if p.type == "keys.low"]
    # Each claim of a one-time key left fewer than 20: the device heard so (counts read after
    # concurrent claims may repeat; the last is none left).
    assert {p[:2] for p in told.pushed} == {(A, "phone")} and len(lows) == 6 and min(lows) == 0
    nothing = await keys.claim(claim_of((A, "tablet"), (B, "phone")), B, parts)
    assert nothing.keys == []  # devices with no keys are left out


async def test_claims_are_limited_per_user(world: Any) -> None:
    parts, _ = world
    await keys.claim(claim_of(*[(A, f"d{i}") for i in range(10)]), B, parts)  # the burst
    error = await refused(keys.claim(claim_of((A, "d0")), B, parts))
    assert error.code == ErrorCode.RATE_LIMITED
    await keys.claim(claim_of((A, "d0")), A, parts)  # another user's bucket


async def test_devices_lists_published_keys_and_refuses_unknown_users(world: Any) -> None:
    parts, _ = world
    device = FakeDevice(A, "phone")
    await publish(parts, device, device.publish())
    listed = await keys.devices(e2e.KeysDevices(user_ids=[A, B]), parts)
    assert [(d.user_id, d.device_id, d.signing_key) for d in listed.devices] == [(A, "phone", device.signing_key)]
    error = await refused(keys.devices(e2e.KeysDevices(user_ids=[A, "u_nobody"]), parts))
    assert error.code == ErrorCode.NOT_FOUND
