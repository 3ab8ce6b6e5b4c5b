"""chat's call signalling (one stored message per call), each operation mapped to its domain
function in domain/calls.py."""
from services.chat.domain import calls
from services.chat.parts import ChatParts
from shared.contracts.base import Empty
from shared.contracts.calls import CallAccept, CallIce, CallInvite, CallInviteReply, CallTarget
from shared.contracts.errors import ParleyError
from shared.contracts.wire import Caller, user_of
from shared.declared import operation


def _device(caller: Caller) -> str:
    if caller.device_id is None:
        raise ParleyError.unauthorized()
    return caller.device_id


class CallHandlers(ChatParts):
    @operation("call.invite")
    async def invite(self, request: CallInvite, caller: Caller) -> CallInviteReply:
        return await calls.invite(request, user_of(caller), _device(caller), self.calls)

    @operation("call.accept")
    async def accept_call(self, request: CallAccept, caller: Caller) -> Empty:
        await calls.accept(request, user_of(caller), _device(caller), self.calls)
        return Empty()

    @operation("call.decline")
    async def decline_call(self, request: CallTarget, caller: Caller) -> Empty:
        await calls.decline(request.call_id, user_of(caller), self.calls)
        return Empty()

    @operation("call.cancel")
    async def cancel_call(self, request: CallTarget, caller: Caller) -> Empty:
        await calls.cancel(request.call_id, user_of(caller), self.calls)
        return Empty()

    @operation("call.hangup")
    async def hang_up(self, request: CallTarget, caller: Caller) -> Empty:
        await calls.hang_up(request.call_id, user_of(caller), self.calls)
        return Empty()

    @operation("call.ice")
    async def ice(self, request: CallIce, caller: Caller) -> Empty:
        await calls.relay_ice(request, user_of(caller), _device(caller), self.calls)
        return Empty()

