"""The key directory (docs/security.md "Operations (auth service: the key directory)"): devices
publish their signed keys, anyone looks up a user's devices, and claims one-time keys to open
Olm sessions with them. Every signature is checked before anything is stored."""
import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import datetime

from services.auth.domain.limits import STORE_TIMEOUT_SECONDS
from services.auth.domain.ports import (
    DevicePushes, KeyEvents, KeyStore, OneTimeKey, PublishedDevice, RateBucket, Unreachable, UserStore, underlying,
)
from services.auth.domain.signatures import check_signature, signed_text
from shared.contracts import e2e
from shared.contracts.base import iso
from shared.contracts.errors import ParleyError
from shared.delivery import push
from shared.logs import log_event
from shared.ratelimit import FailOpen

log = logging.getLogger("parley.auth")


@dataclass(frozen=True)
class KeyParts:
    """What the key directory needs: its store, the users (to tell an unknown one), the event
    out, pushes to a device, and the claims' per-user bucket."""

    keys: KeyStore
    users: UserStore
    events: KeyEvents
    pushes: DevicePushes
    claims: "ClaimLimit"


class ClaimLimit:
    """Key claims per user: a token bucket taken once per claimed device, failing open without Redis."""

    def __init__(self, bucket: RateBucket):
        self.bucket = bucket
        self.outage = FailOpen("key_claim_limit", log)

    async def take(self, user_id: str, devices: int) -> None:
        try:
            async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                taken = await self.bucket.take_many([user_id] * devices)
        except (Unreachable, TimeoutError) as exc:
            self.outage.failed(underlying(exc))
            return
        self.outage.worked()
        if not all(taken):
            wait = math.ceil(1 / self.bucket.rate_per_second)
            raise ParleyError.rate_limited(f"too many key claims; retry in {wait} s")


async def publish(
    request: e2e.KeysPublish, user_id: str, device_id: str, now: datetime, parts: KeyParts
) -> e2e.KeysPublishReply:
    """Store what the device publishes: its device keys (the first time, or replacing them: its
    unclaimed one-time keys go), one-time keys (at most MAX_UNCLAIMED_ONE_TIME_KEYS unclaimed),
    its fallback key. Checked whole before anything is written."""
    store = parts.keys
    current = await store.device(user_id, device_id)
    published = _published(request.device_keys, user_id, device_id, now) if request.device_keys else None
    if published is None and current is None:
        raise ParleyError.bad_request("data.device_keys: a device's first keys.publish carries its device_keys")
    device = published or current
    assert device is not None
    one_time = [_signed(k, "one_time_key", device, f"data.one_time_keys[{i}]") for i, k in enumerate(request.one_time_keys or ())]
    fallback = _signed(request.fallback_key, "fallback_key", device, "data.fallback_key") if request.fallback_key else None
    change: e2e.KeyChange | None = None
    if published is not None and current is None:
        change = "added"
    elif published is not None and current is not None and not published.same_keys(current):
        change = "replaced"
    kept = {} if change == "replaced" else await store.one_time_keys(user_id, device_id, [k.key_id for k in one_time])
    if any(kept[k.key_id] != k for k in one_time if k.key_id in kept):
        raise ParleyError.conflict("data.one_time_keys: a key_id already published with another key")
    new = [k for k in one_time if k.key_id not in kept]
    held = 0 if change == "replaced" else await store.count_one_time_keys(user_id, device_id)
    if held + len(new) > e2e.MAX_UNCLAIMED_ONE_TIME_KEYS:
        raise ParleyError.conflict(
            f"data.one_time_keys: a device holds at most {e2e.MAX_UNCLAIMED_ONE_TIME_KEYS} unclaimed one-time keys"
            f" ({held} now)"
        )
    if change is not None:
        await store.put_device(device)
    if change == "replaced":
        await store.drop_one_time_keys(user_id, device_id)
    await store.add_one_time_keys(user_id, device_id, new)
    if fallback is not None:
        await store.set_fallback(user_id, device_id, fallback)
    count = await store.count_one_time_keys(user_id, device_id)
    if change is not None:
        await parts.events.changed(e2e.KeysChanged(user_id=user_id, device_id=device_id, change=change))
        log_event(log, "keys.changed", device_id=device_id, change=change)
    return e2e.KeysPublishReply(one_time_key_count=count)


def _published(keys: e2e.DeviceKeys, user_id: str, device_id: str, now: datetime) -> PublishedDevice:
    signed = signed_text("device", user_id, device_id, keys.identity_key, keys.signing_key)
    check_signature(keys.signing_key, keys.signature, signed, "data.device_keys.signature")
    return PublishedDevice(user_id, device_id, keys.identity_key, keys.signing_key, keys.signature, now)


def _signed(key: e2e.SignedKey, kind: str, device: PublishedDevice, field: str) -> OneTimeKey:
    signed = signed_text(kind, device.user_id, device.device_id, key.key_id, key.key)
    check_signature(device.signing_key, key.signature, signed, f"{field}.signature")
    return OneTimeKey(key.key_id, key.key, key.signature)


async def devices(request: e2e.KeysDevices, parts: KeyParts) -> e2e.KeysDevicesReply:
    """The published devices of these users (a user without keys has none); an unknown user is
    not_found."""
    user_ids = list(dict.fromkeys(request.user_ids))
    known = {p.user_id for p in await parts.users.profiles(user_ids)}
    if missing := [u for u in user_ids if u not in known]:
        raise ParleyError.not_found(f"data.user_ids: no such user {missing[0]}")
    return e2e.KeysDevicesReply(devices=[
        e2e.DeviceKeysEntry(
            user_id=d.user_id, device_id=d.device_id, identity_key=d.identity_key, signing_key=d.signing_key,
            signature=d.signature, published_at=iso(d.published_at),
        )
        for d in await parts.keys.devices_of(user_ids)
    ])


async def claim(request: e2e.KeysClaim, user_id: str, parts: KeyParts) -> e2e.KeysClaimReply:
    """One key per device asked for: a one-time key, handed out once, else its fallback key; a
    device with neither is left out. A device left with few one-time keys is told (keys.low)."""
    wanted = list(dict.fromkeys((d.user_id, d.device_id) for d in request.devices))
    await parts.claims.take(user_id, len(wanted))
    claimed = await asyncio.gather(*(_claim_one(u, d, parts) for u, d in wanted))
    return e2e.KeysClaimReply(keys=[k for k in claimed if k is not None])


async def _claim_one(user_id: str, device_id: str, parts: KeyParts) -> e2e.ClaimedKey | None:
    key = await parts.keys.claim_one_time_key(user_id, device_id)
    fallback = False
    if key is None:
        device = await parts.keys.device(user_id, device_id)
        if device is None or device.fallback is None:
            return None
        key, fallback = device.fallback, True
    else:
        left = await parts.keys.count_one_time_keys(user_id, device_id)
        if left < e2e.LOW_ONE_TIME_KEYS:
            await parts.pushes.to_device(
                user_id, device_id, [push("keys.low", e2e.KeysLowPush(one_time_key_count=left))]
            )
    return e2e.ClaimedKey(
        user_id=user_id, device_id=device_id, key_id=key.key_id, key=key.key, signature=key.signature,
        fallback=fallback,
    )


async def remove(user_id: str, device_id: str, parts: KeyParts) -> None:
    """The device's keys are gone: nobody can open a session with it any more."""
    if await parts.keys.remove_device(user_id, device_id):
        await parts.events.changed(e2e.KeysChanged(user_id=user_id, device_id=device_id, change="removed"))
        log_event(log, "keys.changed", device_id=device_id, change="removed")
