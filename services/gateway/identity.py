"""Who a request comes from: a token checked (signature, expiry, revocation), and the `Caller`
the services trust, built here only, from a bound socket or a token's claims alike."""
from typing import Protocol

from shared.contracts.errors import ParleyError
from shared.contracts.wire import Caller
from shared.tokens import RevocationCheck, TokenClaims, TokenCodec


class Principal(Protocol):
    """A logged-in device: a socket's Session or a token's TokenClaims."""

    @property
    def user_id(self) -> str: ...

    @property
    def device_id(self) -> str: ...

    @property
    def token_id(self) -> str: ...

    @property
    def expires_at(self) -> int: ...


def caller_for(
    gateway_id: str,
    request_id: str,
    principal: Principal | None = None,
    *,
    conn_id: str | None = None,
    address: str | None = None,
) -> Caller:
    """The Caller of one request: who (if logged in), through which gateway and socket, from where."""
    if principal is None:
        return Caller(request_id=request_id, gateway_id=gateway_id, conn_id=conn_id, client_address=address)
    return Caller(
        request_id=request_id,
        user_id=principal.user_id,
        device_id=principal.device_id,
        token_id=principal.token_id,
        token_expires_at=principal.expires_at,
        gateway_id=gateway_id,
        conn_id=conn_id,
        client_address=address,
    )


class TokenCheck:
    """A token's claims, once its signature and expiry hold and it is not revoked."""

    def __init__(self, codec: TokenCodec, revocations: RevocationCheck):
        self.codec = codec
        self.revocations = revocations

    async def verify(self, token: str) -> TokenClaims:
        claims = self.codec.verify(token)
        if await self.revocations.is_revoked(claims.token_id):
            raise ParleyError.unauthorized("token revoked; log in again")
        return claims
