"""User profiles come from auth (which owns users), over RPC."""
from shared.broker import RpcClient
from shared.contracts.auth import UserProfile, UsersGet, UsersGetReply
from shared.contracts.operations import OPERATIONS
from shared.contracts.wire import Caller
from shared.ids import new_id


class AuthProfiles:
    def __init__(self, rpc: RpcClient):
        self.rpc = rpc

    async def get(self, user_ids: list[str]) -> dict[str, UserProfile]:
        if not user_ids:
            return {}
        data = await self.rpc.call(
            OPERATIONS["auth.users.get"],
            Caller(request_id=new_id("r")),
            UsersGet(user_ids=user_ids).model_dump(),
        )
        return {p.user_id: p for p in UsersGetReply.model_validate(data).users}
