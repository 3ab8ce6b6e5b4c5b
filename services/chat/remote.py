"""What chat asks other services over RPC: user profiles (auth owns users) and file
metadata (files owns files)."""
from shared.broker import RpcClient
from shared.contracts.auth import UserProfile, UsersGet
from shared.contracts.files import FileMeta, FileRefs
from shared.contracts.images import ImageInfo, ImageKind, ImageMake, ImageRefs
from shared.contracts.operations import AUTH_USERS_GET, FILES_IMAGES_INFO, FILES_IMAGES_MAKE, FILES_INFO
from shared.contracts.wire import Caller
from shared.ids import new_id


class AuthProfiles:
    def __init__(self, rpc: RpcClient):
        self.rpc = rpc

    async def get(self, user_ids: list[str]) -> dict[str, UserProfile]:
        if not user_ids:
            return {}
        reply = await self.rpc.call(AUTH_USERS_GET, UsersGet(user_ids=user_ids))
        return {p.user_id: p for p in reply.users}


class FilesDirectory:
    """The `Files` port: a batch's files and made stickers, one call each for the whole batch."""

    def __init__(self, rpc: RpcClient):
        self.rpc = rpc

    async def infos(self, file_ids: list[str]) -> dict[str, FileMeta]:
        if not file_ids:
            return {}
        reply = await self.rpc.call(FILES_INFO, FileRefs(file_ids=file_ids))
        return {f.file_id: f for f in reply.files}

    async def images(self, image_ids: list[str]) -> dict[str, ImageInfo]:
        if not image_ids:
            return {}
        reply = await self.rpc.call(FILES_IMAGES_INFO, ImageRefs(image_ids=image_ids))
        return {i.image_id: i for i in reply.images}


class FilesImages:
    """Images made by files from an upload (a group's avatar), with the user as caller: files
    checks they may download it, and answers not_found or bad_request (not an image)."""

    def __init__(self, rpc: RpcClient):
        self.rpc = rpc

    async def make(self, file_id: str, user_id: str, kind: ImageKind) -> str:
        caller = Caller(request_id=new_id("r"), user_id=user_id)
        reply = await self.rpc.call(FILES_IMAGES_MAKE, ImageMake(file_id=file_id, kind=kind), caller)
        return reply.url
