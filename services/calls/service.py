"""calls: one-to-one call signalling and its state in Redis; each call leaves one message, which
chat stores (docs/architecture.md "Calls").

The service class declares what calls is made of and binds each operation to its domain function
(services/calls/domain/signalling.py): `call.invite` is `signalling.invite`, and so on. It keeps
no collection: its state is Redis's, and what it needs of chat's it asks chat (remote.py).
"""
from services.calls.domain import signalling
from services.calls.domain.ports import CallPorts
from services.calls.remote import ChatOverRpc
from services.calls.storage.call_store import RedisCallStore
from shared.contracts.base import Empty
from shared.contracts.calls import CallAccept, CallIce, CallInvite, CallInviteReply, CallTarget
from shared.contracts.wire import Caller, device_of, user_of
from shared.declared import Runtime, Service, operation, part, periodic
from shared.delivery import Deliverer
from shared.presence import Presence
from shared.ratelimit import TokenBucket


def _invite_limit(rt: Runtime) -> TokenBucket:
    s = rt.settings
    return TokenBucket(rt.redis, s.namespace, "call", s.call_invites_per_minute / 60, s.call_invite_burst,
                       s.redis_buckets)


class CallsService(Service):
    name = "calls"
    uses_database = False  # its state is in Redis; chat stores the calls' messages

    calls = part(lambda rt, s: RedisCallStore(rt.redis, rt.settings.namespace, rt.settings.redis_buckets))
    presence = part(lambda rt, s: Presence(rt.redis, rt.settings.namespace, rt.settings.presence_ttl_seconds, rt.settings.redis_buckets))
    # Signalling is transient (like typing): a push lost is a call setup the users retry, so no
    # "deliveries lost" resync is asked for, unlike chat's pushes of stored messages.
    deliver = part(lambda rt, s: Deliverer(s.presence, rt.broker().deliver))
    chat = part(lambda rt, s: ChatOverRpc(rt.rpc()))
    invite_limit = part(lambda rt, s: _invite_limit(rt))
    events = part(lambda rt, s: rt.broker())  # publish_event: `<ns>.events`, confirmed
    ports = part(lambda rt, s: CallPorts(
        calls=s.calls, chat=s.chat, presence=s.presence, deliver=s.deliver, invites=s.invite_limit,
        events=s.events, ring_seconds=rt.settings.call_ring_seconds,
    ))

    async def health(self) -> None:
        """Redis answers: the one store calls has."""
        await self.rt.redis.ping()

    @operation("call.invite")
    async def invite(self, request: CallInvite, caller: Caller) -> CallInviteReply:
        return await signalling.invite(request, user_of(caller), device_of(caller), self.ports)

    @operation("call.accept")
    async def accept(self, request: CallAccept, caller: Caller) -> Empty:
        await signalling.accept(request, user_of(caller), device_of(caller), self.ports)
        return Empty()

    @operation("call.decline")
    async def decline(self, request: CallTarget, caller: Caller) -> Empty:
        await signalling.decline(request.call_id, user_of(caller), self.ports)
        return Empty()

    @operation("call.cancel")
    async def cancel(self, request: CallTarget, caller: Caller) -> Empty:
        await signalling.cancel(request.call_id, user_of(caller), self.ports)
        return Empty()

    @operation("call.hangup")
    async def hang_up(self, request: CallTarget, caller: Caller) -> Empty:
        await signalling.hang_up(request.call_id, user_of(caller), self.ports)
        return Empty()

    @operation("call.ice")
    async def ice(self, request: CallIce, caller: Caller) -> Empty:
        await signalling.relay_ice(request, user_of(caller), device_of(caller), self.ports)
        return Empty()

    @periodic("calls.check", every=lambda settings: settings.call_check_seconds, once_across_replicas=True)
    async def end_calls_due_or_gone(self) -> None:
        """Unanswered calls past their ring time and calls whose participant's socket is gone end;
        messages chat could not store yet are stored."""
        await signalling.check_calls(self.ports)
