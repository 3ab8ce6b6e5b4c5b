"""Session tokens: signed, expiring JWTs that the gateway verifies without asking auth,
plus the revocation list in Redis that `auth.logout` writes."""
import time
from dataclasses import dataclass

import jwt
import redis.asyncio as aioredis

from shared.contracts.errors import ParleyError
from shared.ids import new_id

ALGORITHM = "HS256"


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    device_id: str
    token_id: str
    expires_at: int  # unix seconds


class TokenCodec:
    def __init__(self, secret: str, ttl_seconds: int):
        self.secret = secret
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: str, device_id: str) -> tuple[str, TokenClaims]:
        now = int(time.time())
        claims = TokenClaims(user_id, device_id, new_id("t"), now + self.ttl_seconds)
        token = jwt.encode(
            {"sub": user_id, "dev": device_id, "jti": claims.token_id, "iat": now, "exp": claims.expires_at},
            self.secret,
            algorithm=ALGORITHM,
        )
        return token, claims

    def verify(self, token: str) -> TokenClaims:
        """Signature and expiry only; revocation is `Revocations.is_revoked`."""
        try:
            payload = jwt.decode(
                token, self.secret, algorithms=[ALGORITHM], options={"require": ["sub", "dev", "jti", "exp"]}
            )
        except jwt.ExpiredSignatureError:
            raise ParleyError.unauthorized("token expired; log in again") from None
        except jwt.InvalidTokenError:
            raise ParleyError.unauthorized("invalid token") from None
        return TokenClaims(payload["sub"], payload["dev"], payload["jti"], int(payload["exp"]))


class Revocations:
    """Revoked token ids, each kept only until the token would have expired anyway."""

    def __init__(self, redis: aioredis.Redis, namespace: str):
        self.redis = redis
        self.prefix = f"{namespace}:revoked:"

    async def revoke(self, token_id: str, expires_at: int) -> None:
        ttl = max(1, expires_at - int(time.time()))
        await self.redis.set(self.prefix + token_id, "1", ex=ttl)

    async def is_revoked(self, token_id: str) -> bool:
        return bool(await self.redis.exists(self.prefix + token_id))

    async def revoked_among(self, token_ids: list[str]) -> set[str]:
        if not token_ids:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for token_id in token_ids:
                pipe.exists(self.prefix + token_id)
            found = await pipe.execute()
        return {t for t, hit in zip(token_ids, found) if hit}
