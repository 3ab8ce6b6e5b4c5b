"""What chat asks other services over RPC: user profiles (auth owns users) and file
metadata (files owns files)."""
from shared.broker import RpcClient
from shared.contracts.auth import UserProfile, UsersGet, UsersGetReply
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.files import FileMeta, FileRef
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
            OPERATIONS["auth.users.get"], Caller(request_id=new_id("r")), UsersGet(user_ids=user_ids).model_dump()
        )
        return {p.user_id: p for p in UsersGetReply.model_validate(data).users}


class FilesDirectory:
    def __init__(self, rpc: RpcClient):
        self.rpc = rpc

    async def info(self, file_id: str) -> FileMeta | None:
        try:
            data = await self.rpc.call(
                OPERATIONS["files.info"], Caller(request_id=new_id("r")), FileRef(file_id=file_id).model_dump()
            )
        except ParleyError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return None
            raise
        return FileMeta.model_validate(data)
