"""auth's operations, each mapped to its domain function."""
import logging
from dataclasses import dataclass

from services.auth.domain import accounts, profiles, revocations
from services.auth.domain.accounts import Passwords
from services.auth.domain.limits import LoginThrottle, RegistrationLimit
from services.auth.domain.ports import AvatarMaker, ProfileEvents, RevocationCache, RevocationStore, UserStore
from services.auth.domain.revocations import CacheKeeper
from shared.contracts import auth
from shared.contracts.base import Empty
from shared.contracts.wire import Caller
from shared.logs import log_event
from shared.service import Router
from shared.stores import MongoClient, mongo_ping
from shared.tokens import TokenCodec

log = logging.getLogger("parley.auth")


@dataclass(frozen=True)
class Sessions:
    """What logging in and out needs besides the users: tokens, revocations, abuse limits."""

    tokens: TokenCodec
    revoked: RevocationStore
    cache: RevocationCache
    keeper: CacheKeeper
    login_throttle: LoginThrottle
    register_limit: RegistrationLimit


@dataclass(frozen=True)
class ProfileChanges:
    """What changing a profile needs besides the users: the files service, and the events out."""

    avatars: AvatarMaker
    events: ProfileEvents


def build_router(
    users: UserStore, passwords: Passwords, sessions: Sessions, mongo_client: MongoClient, changes: ProfileChanges
) -> Router:
    router = Router("auth")

    @router.operation("auth.register")
    async def register(request: auth.Register, caller: Caller) -> auth.RegisterReply:
        reply = await accounts.register(request, users, passwords, sessions.register_limit, caller.client_address)
        log_event(log, "user.registered", registered_user_id=reply.user_id, username=reply.username)
        return reply

    @router.operation("auth.login")
    async def login(request: auth.Login, caller: Caller) -> auth.LoginReply:
        reply = await accounts.login(
            request, users, passwords, sessions.tokens, sessions.login_throttle, caller.client_address
        )
        log_event(log, "user.logged_in", logged_in_user_id=reply.user_id, device_id=request.device_id)
        return reply

    @router.operation("auth.logout")
    async def logout(request: auth.Logout, caller: Caller) -> Empty:
        await revocations.logout(caller, sessions.revoked, sessions.cache, sessions.keeper)
        return Empty()

    @router.operation("auth.tokens.revoked", timeout=5)
    async def tokens_revoked(request: auth.TokensRevoked, caller: Caller) -> auth.TokensRevokedReply:
        return await revocations.revoked_among(request, sessions.revoked)

    @router.operation("users.search")
    async def search(request: auth.UserSearch, caller: Caller) -> auth.UserSearchReply:
        return await accounts.search_users(request, users)

    @router.operation("auth.users.get")
    async def users_get(request: auth.UsersGet, caller: Caller) -> auth.UsersGetReply:
        return await accounts.get_profiles(request, users)

    @router.operation("profile.get")
    async def get_profile(request: auth.ProfileGet, caller: Caller) -> auth.UserProfile:
        return await profiles.get_profile(request, users)

    @router.operation("profile.update")
    async def update_profile(request: auth.ProfileUpdate, caller: Caller) -> auth.UserProfile:
        profile = await profiles.update_profile(request, caller, users, changes.avatars, changes.events)
        log_event(log, "profile.updated", avatar_url=profile.avatar_url)
        return profile

    router.health(lambda: mongo_ping(mongo_client))

    return router
