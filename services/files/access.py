"""Who may see a file besides its uploader is chat's to say (it knows where the file was sent),
asked over RPC."""
from shared.broker import RpcClient
from shared.contracts.files import FileAccess
from shared.contracts.operations import CHAT_FILES_ACCESS


class ChatAccess:
    def __init__(self, rpc: RpcClient):
        self.rpc = rpc

    async def allowed(self, file_id: str, user_id: str) -> bool:
        reply = await self.rpc.call(CHAT_FILES_ACCESS, FileAccess(file_id=file_id, user_id=user_id))
        return reply.allowed
