"""shared/tokens.py: signed, expiring session tokens and the revocation list in Redis."""
import base64
import time

import jwt
import pytest

from shared.contracts.errors import ErrorCode, ParleyError
from shared.tokens import Revocations, TokenCodec
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


async def test_revoke_then_is_revoked_and_revoked_among(settings):
    async with redis_namespace(settings) as (redis, namespace):
        revocations = Revocations(redis, namespace)
        codec = TokenCodec(SECRET, 3600)
        _, kept = codec.issue("u_alice", "phone")
        _, dropped = codec.issue("u_alice", "laptop")
        assert not await revocations.is_revoked(dropped.token_id)

        await revocations.revoke(dropped.token_id, dropped.expires_at)

        assert await revocations.is_revoked(dropped.token_id)
        assert not await revocations.is_revoked(kept.token_id)
        assert await revocations.revoked_among([kept.token_id, dropped.token_id, "t_unknown"]) == {dropped.token_id}
        assert await revocations.revoked_among([]) == set()
        # Kept in Redis under the namespace, only as long as the token could still be used.
        key = f"{namespace}:revoked:{dropped.token_id}"
        assert 3590 <= await redis.ttl(key) <= 3600


async def test_revocation_of_an_already_expired_token_still_lands_briefly(settings):
    async with redis_namespace(settings) as (redis, namespace):
        revocations = Revocations(redis, namespace)
        await revocations.revoke("t_old", int(time.time()) - 100)
        assert await revocations.is_revoked("t_old")
        assert 0 < await redis.ttl(f"{namespace}:revoked:t_old") <= 1
