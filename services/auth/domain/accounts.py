"""Registering, logging in, finding users: plain functions over the user store (logging out is
services/auth/domain/revocations.py; the abuse limits are limits.py; profiles profiles.py)."""
import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.auth.domain.limits import LoginThrottle, RegistrationLimit
from services.auth.domain.ports import Profile, UsernameTaken, UserStore
from services.auth.domain.profiles import public_profile
from shared.contracts import auth
from shared.contracts.base import iso_from_timestamp, utc_now
from shared.contracts.errors import ParleyError
from shared.ids import new_id
from shared.tokens import TokenCodec

SEARCH_LIMIT = 20
WRONG_CREDENTIALS = "wrong username or password"


class Passwords:
    """argon2id hashing off the event loop (a hash takes tens of milliseconds of CPU)."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self.hasher = hasher
        self._dummy_hash = hasher.hash("a password nobody has")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Unknown users cost as much as known ones, so timing does not tell which names exist."""
        try:
            return await asyncio.to_thread(self.hasher.verify, password_hash or self._dummy_hash, password) and (
                password_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)


async def register(
    request: auth.Register,
    users: UserStore,
    passwords: Passwords,
    limit: RegistrationLimit | None = None,
    address: str | None = None,
) -> auth.RegisterReply:
    """Counted against the address's registrations before the (costly) hash is made."""
    if limit is not None:
        await limit.take(address)
    user_id = new_id("u")
    password_hash = await passwords.hash(request.password)
    try:
        await users.insert(
            user_id, request.username, request.display_name or request.username, password_hash, utc_now()
        )
    except UsernameTaken:
        raise ParleyError.conflict(f"username {request.username!r} is taken") from None
    return auth.RegisterReply(user_id=user_id, username=request.username)


async def login(
    request: auth.Login,
    users: UserStore,
    passwords: Passwords,
    tokens: TokenCodec,
    throttle: LoginThrottle | None = None,
    address: str | None = None,
) -> auth.LoginReply:
    """Throttled before the password is checked, so a refused guess costs no argon2; the attempt
    then settles as a failure, a success, or neither (the check could not be made)."""
    attempt = await throttle.admit(request.username, address) if throttle is not None else None
    try:
        user = await users.by_username(request.username)
        right = await passwords.verify(user.password_hash if user else None, request.password)
    except BaseException:
        if throttle is not None:
            await throttle.abandoned(attempt)
        raise
    if not right:
        if throttle is not None:
            await throttle.failed(attempt)
        raise ParleyError.unauthorized(WRONG_CREDENTIALS)
    assert user is not None  # verify is never true without a hash
    if throttle is not None:
        await throttle.succeeded(attempt)
    if passwords.needs_rehash(user.password_hash):
        await users.set_password_hash(user.user_id, await passwords.hash(request.password))
    token, claims = tokens.issue(user.user_id, request.device_id)
    return auth.LoginReply(
        user_id=user.user_id, token=token, expires_at=iso_from_timestamp(claims.expires_at)
    )


def _profiles(profiles: list[Profile]) -> list[auth.UserProfile]:
    return [public_profile(p) for p in profiles]


async def search_users(request: auth.UserSearch, users: UserStore) -> auth.UserSearchReply:
    return auth.UserSearchReply(users=_profiles(await users.search_prefix(request.query.strip(), SEARCH_LIMIT)))


async def get_profiles(request: auth.UsersGet, users: UserStore) -> auth.UsersGetReply:
    return auth.UsersGetReply(users=_profiles(await users.profiles(list(dict.fromkeys(request.user_ids)))))
