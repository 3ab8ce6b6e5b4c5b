"""auth's operations, each mapped to its domain function."""
from services.auth.domain import accounts
from services.auth.domain.accounts import Passwords
from services.auth.storage.users import UserStore
from shared.contracts import auth
from shared.contracts.base import Empty
from shared.contracts.wire import Caller
from shared.service import Router
from shared.stores import mongo_ping
from shared.tokens import Revocations, TokenCodec


def build_router(
    users: UserStore, passwords: Passwords, tokens: TokenCodec, revocations: Revocations, mongo_client
) -> Router:
    router = Router("auth")

    @router.operation("auth.register")
    async def register(request: auth.Register, caller: Caller) -> auth.RegisterReply:
        return await accounts.register(request, users, passwords)

    @router.operation("auth.login")
    async def login(request: auth.Login, caller: Caller) -> auth.LoginReply:
        return await accounts.login(request, users, passwords, tokens)

    @router.operation("auth.logout")
    async def logout(request: auth.Logout, caller: Caller) -> Empty:
        await accounts.logout(caller, revocations)
        return Empty()

    @router.operation("users.search")
    async def search(request: auth.UserSearch, caller: Caller) -> auth.UserSearchReply:
        return await accounts.search_users(request, users)

    @router.operation("auth.users.get")
    async def profiles(request: auth.UsersGet, caller: Caller) -> auth.UsersGetReply:
        return await accounts.get_profiles(request, users)

    @router.operation("auth.health", timeout=5)
    async def health(request: Empty, caller: Caller) -> Empty:
        await mongo_ping(mongo_client)
        return Empty()

    return router
