"""auth: users, passwords, tokens and their revocations, login limits, profiles, and the key
directory of end-to-end encryption (devices are auth's).

The service class declares what auth is made of and binds each operation to its domain function
(services/auth/domain/); the operation `auth.register` is `accounts.register`, and so on.
"""
import logging

from argon2 import PasswordHasher

from services.auth.domain import accounts, keys, profiles, revocations
from services.auth.domain.accounts import Passwords
from services.auth.domain.keys import ClaimLimit, KeyParts
from services.auth.domain.limits import LoginRules, LoginThrottle, RegistrationLimit
from services.auth.domain.revocations import CHECK_SECONDS, CacheKeeper
from services.auth.remote import BrokerKeyEvents, BrokerProfileEvents, FilesAvatars
from services.auth.storage.keys import MongoKeyStore
from services.auth.storage.limits import RedisGates, RedisRateBucket
from services.auth.storage.revocation_cache import RedisRevocationCache
from services.auth.storage.revocations import MongoRevocationStore
from services.auth.storage.users import MongoUserStore
from shared.contracts import auth, e2e
from shared.contracts.base import Empty, utc_now
from shared.contracts.wire import Caller, device_of, user_of
from shared.declared import Runtime, Service, operation, part, periodic
from shared.delivery import Deliverer
from shared.logs import log_event
from shared.presence import Presence
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


def _key_claims(rt: Runtime) -> ClaimLimit:
    s = rt.settings
    return ClaimLimit(RedisRateBucket(
        rt.redis, s.namespace, "keyclaim", s.key_claims_per_minute / 60, s.key_claim_burst, s.redis_buckets,
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
    # the key directory (docs/security.md)
    key_store = part(lambda rt, s: MongoKeyStore(rt.db))
    presence = part(lambda rt, s: Presence(
        rt.redis, rt.settings.namespace, rt.settings.presence_ttl_seconds, rt.settings.redis_buckets
    ))
    key_parts = part(lambda rt, s: KeyParts(
        keys=s.key_store, users=s.users, events=BrokerKeyEvents(rt.broker()),
        pushes=Deliverer(s.presence, rt.broker().deliver), claims=_key_claims(rt),
    ))

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

    # --- the key directory (docs/security.md) ---------------------------------------------------
    @operation("keys.publish")
    async def publish_keys(self, request: e2e.KeysPublish, caller: Caller) -> e2e.KeysPublishReply:
        return await keys.publish(request, user_of(caller), device_of(caller), utc_now(), self.key_parts)

    @operation("keys.devices")
    async def key_devices(self, request: e2e.KeysDevices, caller: Caller) -> e2e.KeysDevicesReply:
        return await keys.devices(request, self.key_parts)

    @operation("keys.claim")
    async def claim_keys(self, request: e2e.KeysClaim, caller: Caller) -> e2e.KeysClaimReply:
        return await keys.claim(request, user_of(caller), self.key_parts)

    @operation("keys.remove")
    async def remove_keys(self, request: e2e.KeysRemove, caller: Caller) -> Empty:
        await keys.remove(user_of(caller), device_of(caller), self.key_parts)
        return Empty()

    @periodic("revocations.cache", every=lambda settings: CHECK_SECONDS)
    async def keep_revocation_cache_whole(self) -> None:
        """Every replica looks (a logout whose cache write failed here must be marked here); a
        rebuild under way elsewhere is left to finish (services/auth/domain/revocations.py)."""
        await self.keeper.check()
