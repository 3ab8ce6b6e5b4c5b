"""What chat asks other services over RPC: user profiles and devices' published keys (auth owns
users and their keys) and file metadata (files owns files); never anything that asks chat back."""
from shared.broker import RpcClient
from shared.contracts.auth import UserProfile, UsersGet
from shared.contracts.files import FileMeta, FileRefs
from shared.contracts.images import ImageInfo, ImageRefs
from shared.contracts.e2e import KeysDevices
from shared.contracts.operations import AUTH_USERS_GET, FILES_IMAGES_INFO, FILES_INFO, KEYS_DEVICES


class AuthProfiles:
    def __init__(self, rpc: RpcClient):
        self.rpc = rpc

    async def get(self, user_ids: list[str]) -> dict[str, UserProfile]:
        if not user_ids:
            return {}
        reply = await self.rpc.call(AUTH_USERS_GET, UsersGet(user_ids=user_ids))
        return {p.user_id: p for p in reply.users}


class AuthKeys:
    """The `DeviceKeys` port: auth's key directory."""

    def __init__(self, rpc: RpcClient):
        self.rpc = rpc

    async def published_devices(self, user_ids: list[str]) -> set[tuple[str, str]]:
        reply = await self.rpc.call(KEYS_DEVICES, KeysDevices(user_ids=user_ids))
        return {(d.user_id, d.device_id) for d in reply.devices}


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
