"""What calls asks chat over RPC (chat owns friendships, conversations and messages):
`chat.calls.peer` at invite, `chat.calls.record` once a call has ended."""
from shared.broker import RpcClient
from shared.contracts.calls import CallMessage, CallPeer, CallPeerAsk
from shared.contracts.operations import CHAT_CALLS_PEER, CHAT_CALLS_RECORD


class ChatOverRpc:
    def __init__(self, rpc: RpcClient):
        self.rpc = rpc

    async def peer(self, ask: CallPeerAsk) -> CallPeer:
        return await self.rpc.call(CHAT_CALLS_PEER, ask)

    async def record(self, message: CallMessage) -> None:
        await self.rpc.call(CHAT_CALLS_RECORD, message)
