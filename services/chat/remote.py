"""What chat asks other services over RPC: user profiles (auth owns users) and file
metadata (files owns files)."""
from shared.broker import RpcClient
from shared.contracts.auth import UserProfile, UsersGet
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.files import FileMeta, FileRef
from shared.contracts.operations import AUTH_USERS_GET, FILES_INFO


class AuthProfiles:
    def __init__(self, rpc: RpcClient):
        self.rpc = rpc

    async def get(self, user_ids: list[str]) -> dict[str, UserProfile]:
        if not user_ids:
            return {}
        reply = await self.rpc.call(AUTH_USERS_GET, UsersGet(user_ids=user_ids))
        return {p.user_id: p for p in reply.users}


class FilesDirectory:
    def __init__(self, rpc: RpcClient):
        self.rpc = rpc

    async def info(self, file_id: str) -> FileMeta | None:
        try:
            return await self.rpc.call(FILES_INFO, FileRef(file_id=file_id))
        except ParleyError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return None
            raise
