"""auth: users, passwords, tokens and their revocations, login limits, profiles.

The service class declares what auth is made of and binds each operation to its domain function
(services/auth/domain/); the operation `auth.register` is `accounts.register`, and so on.
"""
import logging

from argon2 import PasswordHasher

from services.auth.domain import accounts, profiles, revocations
from services.auth.domain.accounts import Passwords
from services.auth.domain.limits import LoginRules, LoginThrottle, RegistrationLimit
from services.auth.domain.revocations import CHECK_SECONDS, CacheKeeper
from services.auth.remote import BrokerProfileEvents, FilesAvatars
from services.auth.storage.limits import RedisGates, RedisRateBucket
from services.auth.storage.revocation_cache import RedisRevocationCache
from services.auth.storage.revocations import MongoRevocationStore
from services.auth.storage.users import MongoUserStore
from shared.contracts import auth
from shared.contracts.base import Empty
from shared.contracts.wire import Caller
from shared.declared import Runtime, Service, operation, part, periodic
from shared.logs import log_event
from shared.tokens import TokenCodec

log = logging.getLogger("parley.auth")


def _password_hasher(rt: Runtime) -> Passwords:
    s = rt.settings
    return Passwords(PasswordHasher(time_cost=s.argon2_time_cost, memory_cost=s.argon2_memory_kib, parallelism=1))


def _registrations(rt: Runtime) -> RegistrationLimit:
    s = rt.settings
    return RegistrationLimit(RedisRateBucket(
        rt.redis, s.namespace, "register", s.register_per_address_per_hour / 3600, s.register_burst_per_address,
        s.redis_buckets,
    ))


class AuthService(Service):
    name = "auth"

    users = part(lambda rt, s: MongoUserStore(rt.db))
    revoked = part(lambda rt, s: MongoRevocationStore(rt.db))
    revocation_cache = part(lambda rt, s: RedisRevocationCache(rt.redis, rt.settings.namespace))
    keeper = part(lambda rt, s: CacheKeeper(s.revoked, s.revocation_cache))
    passwords = part(lambda rt, s: _password_hasher(rt))
    tokens = part(lambda rt, s: TokenCodec(rt.settings.jwt_secret, rt.settings.token_ttl_seconds))
    login_throttle = part(
        lambda rt, s: LoginThrottle(
            RedisGates(rt.redis, rt.settings.namespace), LoginRules.from_settings(rt.settings),
            wait_in_line_seconds=rt.settings.login_wait_in_line_seconds,
        )
    )
    register_limit = part(lambda rt, s: _registrations(rt))
    avatars = part(lambda rt, s: FilesAvatars(rt.rpc()))
    profile_events = part(lambda rt, s: BrokerProfileEvents(rt.broker()))

    @operation("auth.register")
    async def register(self, request: auth.Register, caller: Caller) -> auth.RegisterReply:
        reply = await accounts.register(request, self.users, self.passwords, self.register_limit, caller.client_address)
        log_event(log, "user.registered", registered_user_id=reply.user_id, username=reply.username)
        return reply

    @operation("auth.login")
    async def login(self, request: auth.Login, caller: Caller) -> auth.LoginReply:
        reply = await accounts.login(
            request, self.users, self.passwords, self.tokens, self.login_throttle, caller.client_address
        )
        log_event(log, "user.logged_in", logged_in_user_id=reply.user_id, device_id=request.device_id)
        return reply

    @operation("auth.logout")
    async def logout(self, request: auth.Logout, caller: Caller) -> Empty:
        await revocations.logout(caller, self.revoked, self.revocation_cache, self.keeper)
        return Empty()

    @operation("auth.tokens.revoked", timeout=5)
    async def tokens_revoked(self, request: auth.TokensRevoked, caller: Caller) -> auth.TokensRevokedReply:
        return await revocations.revoked_among(request, self.revoked)

    @operation("users.search")
    async def search(self, request: auth.UserSearch, caller: Caller) -> auth.UserSearchReply:
        return await accounts.search_users(request, self.users)

    @operation("auth.users.get")
    async def users_get(self, request: auth.UsersGet, caller: Caller) -> auth.UsersGetReply:
        return await accounts.get_profiles(request, self.users)

    @operation("profile.get")
    async def get_profile(self, request: auth.ProfileGet, caller: Caller) -> auth.UserProfile:
        return await profiles.get_profile(request, self.users)

    @operation("profile.update")
    async def update_profile(self, request: auth.ProfileUpdate, caller: Caller) -> auth.UserProfile:
        profile = await profiles.update_profile(request, caller, self.users, self.avatars, self.profile_events)
        log_event(log, "profile.updated", avatar_url=profile.avatar_url)
        return profile

    @periodic("revocations.cache", every=lambda settings: CHECK_SECONDS)
    async def keep_revocation_cache_whole(self) -> None:
        """Every replica looks (a logout whose cache write failed here must be marked here); a
        rebuild under way elsewhere is left to finish (services/auth/domain/revocations.py)."""
        await self.keeper.check()
