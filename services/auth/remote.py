"""What auth asks or tells other services: the files service makes avatars (over RPC, as the
user, who must be allowed to download the upload); profile and device key changes go out as
events."""
from shared.broker import Broker, RpcClient
from shared.contracts.auth import ProfileChanged, UserProfile
from shared.contracts.e2e import KeysChanged
from shared.contracts.images import ImageMake
from shared.contracts.operations import FILES_IMAGES_MAKE
from shared.contracts.wire import Caller


class FilesAvatars:
    """The `AvatarMaker` port (services/auth/domain/ports.py)."""

    def __init__(self, rpc: RpcClient):
        self.rpc = rpc

    async def make_avatar(self, file_id: str, caller: Caller) -> str:
        info = await self.rpc.call(FILES_IMAGES_MAKE, ImageMake(file_id=file_id, kind="avatar"), caller)
        return info.url


class BrokerProfileEvents:
    """The `ProfileEvents` port: `profile.changed` on `<ns>.events`, confirmed by the broker."""

    def __init__(self, broker: Broker):
        self.broker = broker

    async def changed(self, profile: UserProfile) -> None:
        await self.broker.publish_event("profile.changed", ProfileChanged(user=profile))


class BrokerKeyEvents:
    """The `KeyEvents` port: `keys.changed` on `<ns>.events`, confirmed by the broker."""

    def __init__(self, broker: Broker):
        self.broker = broker

    async def changed(self, change: KeysChanged) -> None:
        await self.broker.publish_event("keys.changed", change)
