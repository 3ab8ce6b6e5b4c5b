"""Who may see a file besides its uploader is chat's to say (it knows where the file was sent),
asked over RPC."""
from shared.broker import RpcClient
from shared.contracts.files import FileAccess, FileAccessReply
from shared.contracts.operations import OPERATIONS
from shared.contracts.wire import Caller
from shared.ids import new_id


class ChatAccess:
    def __init__(self, rpc: RpcClient):
        self.rpc = rpc

    async def allowed(self, file_id: str, user_id: str) -> bool:
        data = await self.rpc.call(
            OPERATIONS["chat.files.access"],
            Caller(request_id=new_id("r")),
            FileAccess(file_id=file_id, user_id=user_id).model_dump(),
        )
        return FileAccessReply.model_validate(data).allowed
