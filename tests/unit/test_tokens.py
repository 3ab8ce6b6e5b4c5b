"""shared/tokens.py: signed, expiring session tokens, the revocation cache in Redis and the
gateway's check that falls back to auth when the cache cannot say."""
import base64
import time

import jwt
import pytest

from shared.contracts.auth import TokensRevokedReply
from shared.contracts.errors import ErrorCode, ParleyError
from shared.tokens import RevocationCheck, Revocations, TokenCodec, marker_run_id
from shared.stores import redis_client
from tests.unit.helpers import redis_namespace


SECRET = "unit-test-secret-that-is-long-enough-for-hs256"
OTHER_SECRET = "another-secret-that-is-also-long-enough-for-hs256"


def rejected(codec: TokenCodec, token: str) -> ParleyError:
    with pytest.raises(ParleyError) as info:
        codec.verify(token)
    return info.value


def test_issue_then_verify_round_trip():
    codec = TokenCodec(SECRET, ttl_seconds=3600)
    before = int(time.time())
    token, claims = codec.issue("u_alice", "laptop")
    verified = codec.verify(token)
    assert verified == claims
    assert (verified.user_id, verified.device_id) == ("u_alice", "laptop")
    assert before + 3600 <= verified.expires_at <= int(time.time()) + 3600


def test_each_token_has_its_own_id():
    codec = TokenCodec(SECRET, ttl_seconds=3600)
    (_, first), (_, second) = codec.issue("u_alice", "d"), codec.issue("u_alice", "d")
    assert first.token_id != second.token_id


def test_expired_token_is_unauthorized_and_says_expired():
    codec = TokenCodec(SECRET, ttl_seconds=-10)
    token, _ = codec.issue("u_alice", "laptop")
    err = rejected(TokenCodec(SECRET, ttl_seconds=3600), token)
    assert err.code == ErrorCode.UNAUTHORIZED
    assert "expired" in err.message


def test_crafted_expired_token_is_unauthorized():
    now = int(time.time())
    token = jwt.encode({"sub": "u", "dev": "d", "jti": "t1", "iat": now - 100, "exp": now - 1}, SECRET, algorithm="HS256")
    err = rejected(TokenCodec(SECRET, 3600), token)
    assert err.code == ErrorCode.UNAUTHORIZED
    assert "expired" in err.message


def test_tampered_signature_is_unauthorized():
    codec = TokenCodec(SECRET, 3600)
    token, _ = codec.issue("u_alice", "laptop")
    header, payload, signature = token.split(".")
    flipped = base64.urlsafe_b64encode(bytes(b ^ 1 for b in base64.urlsafe_b64decode(signature + "=="))).rstrip(b"=")
    err = rejected(codec, f"{header}.{payload}.{flipped.decode()}")
    assert err.code == ErrorCode.UNAUTHORIZED
    assert "expired" not in err.message


def test_tampered_payload_is_unauthorized():
    codec = TokenCodec(SECRET, 3600)
    token, _ = codec.issue("u_alice", "laptop")
    header, _, signature = token.split(".")
    forged_claims = jwt.encode({"sub": "u_mallory", "dev": "laptop", "jti": "t", "exp": int(time.time()) + 60}, "x" * 32)
    forged = f"{header}.{forged_claims.split('.')[1]}.{signature}"
    assert rejected(codec, forged).code == ErrorCode.UNAUTHORIZED


def test_token_signed_with_another_secret_is_unauthorized():
    token, _ = TokenCodec(OTHER_SECRET, 3600).issue("u_alice", "laptop")
    assert rejected(TokenCodec(SECRET, 3600), token).code == ErrorCode.UNAUTHORIZED


def test_unsigned_token_is_unauthorized():
    token = jwt.encode({"sub": "u", "dev": "d", "jti": "t", "exp": int(time.time()) + 60}, None, algorithm="none")
    assert rejected(TokenCodec(SECRET, 3600), token).code == ErrorCode.UNAUTHORIZED


def test_token_missing_a_required_claim_is_unauthorized():
    token = jwt.encode({"sub": "u", "jti": "t", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")  # no "dev"
    assert rejected(TokenCodec(SECRET, 3600), token).code == ErrorCode.UNAUTHORIZED


def test_garbage_is_unauthorized():
    assert rejected(TokenCodec(SECRET, 3600), "not-a-token").code == ErrorCode.UNAUTHORIZED


async def complete_cache(revocations: Revocations) -> str:
    """Mark the cache complete, as auth does after a rebuild."""
    building = await revocations.begin_rebuild()
    assert await revocations.finish_rebuild(building, await revocations.run_id())
    return await revocations.marker()


async def test_revoked_ids_are_cached_per_token_until_the_token_expires(redis_settings):
    async with redis_namespace(redis_settings) as (redis, namespace):
        revocations = Revocations(redis, namespace)
        await complete_cache(revocations)
        codec = TokenCodec(SECRET, 3600)
        issued = time.time()
        _, kept = codec.issue("u_alice", "phone")
        _, dropped = codec.issue("u_alice", "laptop")
        assert await revocations.cached_among([dropped.token_id]) == set()

        await revocations.revoke(dropped.token_id, dropped.expires_at)

        assert await revocations.cached_among([kept.token_id, dropped.token_id, "t_unknown"]) == {dropped.token_id}
        key = f"{namespace}:revoked:{dropped.token_id}"
        # Until the token expires: an hour less the time since it was issued (whole seconds).
        assert 3600 - (time.time() - issued) - 2 <= await redis.ttl(key) <= 3600


async def test_revocation_of_an_already_expired_token_still_lands_briefly(redis_settings):
    async with redis_namespace(redis_settings) as (redis, namespace):
        revocations = Revocations(redis, namespace)
        await revocations.revoke("t_old", int(time.time()) - 100)
        # A second (TTL's whole seconds round 0.5 s and less down to 0: milliseconds here).
        assert 0 < await redis.pttl(f"{namespace}:revoked:t_old") <= 1000


async def test_without_a_complete_marker_the_cache_does_not_answer(redis_settings):
    async with redis_namespace(redis_settings) as (redis, namespace):
        revocations = Revocations(redis, namespace)
        await revocations.revoke("t_gone", int(time.time()) + 60)
        assert await revocations.cached_among(["t_gone", "t_other"]) is None  # never rebuilt

        building = await revocations.begin_rebuild()
        assert await revocations.cached_among(["t_other"]) is None  # still being rebuilt
        assert await revocations.finish_rebuild(building, await revocations.run_id())
        assert await revocations.cached_among(["t_gone", "t_other"]) == {"t_gone"}

        await revocations.mark_incomplete()  # what a Redis that lost its data looks like
        assert await revocations.cached_among(["t_other"]) is None


async def test_a_rebuild_whose_claim_was_lost_is_not_marked_complete(redis_settings):
    async with redis_namespace(redis_settings) as (redis, namespace):
        revocations = Revocations(redis, namespace)
        building = await revocations.begin_rebuild()
        await redis.delete(revocations.marker_key)  # Redis flushed in the middle of the rebuild
        assert not await revocations.finish_rebuild(building, await revocations.run_id())
        assert await revocations.marker() is None


async def test_the_complete_marker_names_the_redis_run(redis_settings):
    async with redis_namespace(redis_settings) as (redis, namespace):
        revocations = Revocations(redis, namespace)
        marker = await complete_cache(revocations)
        assert marker_run_id(marker) == await revocations.run_id()
        assert marker_run_id(None) is None
        assert marker_run_id("building:g_1") is None


class Auth:
    """The `auth.tokens.revoked` port as the gateway calls it: answers from a set, or fails."""

    def __init__(self, revoked: set[str], down: bool = False):
        self.revoked, self.down, self.asked = revoked, down, []

    async def __call__(self, token_ids: list[str]) -> TokensRevokedReply:
        self.asked.append(token_ids)
        if self.down:
            raise ParleyError.unavailable("the auth service did not answer in time; retry")
        return TokensRevokedReply(revoked=sorted(self.revoked & set(token_ids)))


async def test_check_reads_a_complete_cache_without_asking_auth(redis_settings):
    async with redis_namespace(redis_settings) as (redis, namespace):
        cache = Revocations(redis, namespace)
        await complete_cache(cache)
        await cache.revoke("t_out", int(time.time()) + 60)
        auth = Auth(set(), down=True)
        check = RevocationCheck(cache, auth)
        assert await check.is_revoked("t_out")
        assert not await check.is_revoked("t_in")
        assert await check.revoked_among([]) == set()
        assert auth.asked == []


async def test_check_asks_auth_when_redis_lost_the_cache(redis_settings):
    async with redis_namespace(redis_settings) as (redis, namespace):
        cache = Revocations(redis, namespace)
        await complete_cache(cache)
        await cache.revoke("t_out", int(time.time()) + 60)
        async for key in redis.scan_iter(f"{namespace}:*"):  # Redis loses everything
            await redis.delete(key)
        auth = Auth({"t_out"})
        check = RevocationCheck(cache, auth)
        assert await check.is_revoked("t_out")  # the cache alone would have said "not revoked"
        assert await check.revoked_among([f"t_{i}" for i in range(2500)] + ["t_out"]) == {"t_out"}
        assert [len(batch) for batch in auth.asked[1:]] == [1000, 1000, 501]


async def test_check_refuses_when_neither_redis_nor_auth_can_say(redis_settings):
    async with redis_namespace(redis_settings) as (redis, namespace):
        check = RevocationCheck(Revocations(redis, namespace), Auth(set(), down=True))
        with pytest.raises(ParleyError) as info:
            await check.is_revoked("t_any")
        assert info.value.code == ErrorCode.UNAVAILABLE


async def test_check_asks_auth_when_redis_is_unreachable(redis_settings):
    dead = redis_client(redis_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        auth = Auth({"t_out"})
        check = RevocationCheck(Revocations(dead, "nowhere"), auth)
        assert await check.revoked_among(["t_out", "t_in"]) == {"t_out"}
        check = RevocationCheck(Revocations(dead, "nowhere"), Auth(set(), down=True))
        with pytest.raises(ParleyError) as info:
            await check.is_revoked("t_in")
        assert info.value.code == ErrorCode.UNAVAILABLE
    finally:
        await dead.aclose()
