"""To-device messages (docs/security.md "To-device messages"): Olm ciphertexts from one of a
user's devices to another of theirs (step one: own devices only), kept until the target
acknowledges them and pushed to it live and on every bind before `sync.done`. This is how one
of my devices gives a new one my history; the server never can."""
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Protocol

from services.chat.domain.ports import DeviceKeys, DeviceMessages
from services.chat.domain.records import DeviceMessage
from shared.contracts import e2e
from shared.contracts.errors import ParleyError
from shared.delivery import Deliverer
from shared.ids import new_id
from shared.presence import DeviceSocket

# A bind's waiting messages go to the socket in pushes of at most this many bytes of bodies (the
# gateway holds at most 8 MiB unread for a socket: docs/protocol.md "Transport").
SYNC_CHUNK_BYTES = 256 * 1024


class WaitingParts(Protocol):
    """What a bind's sync needs of the waiting messages: them, pushes, and how many at most."""

    @property
    def device_messages(self) -> DeviceMessages: ...

    @property
    def deliver(self) -> Deliverer: ...

    @property
    def device_messages_max(self) -> int: ...


class DeviceMessageParts(WaitingParts, Protocol):
    """The waiting messages, auth's key directory (which devices can be written to), pushes, and
    the bounds (the device_message_* settings)."""

    @property
    def device_keys(self) -> DeviceKeys: ...

    @property
    def device_message_ttl(self) -> timedelta: ...

    @property
    def device_messages_max_bytes(self) -> int: ...


async def send_to_devices(
    request: e2e.DevicesSend, user_id: str, device_id: str, now: datetime, parts: DeviceMessageParts
) -> e2e.DevicesSendReply:
    """Store each message for its target (one of the sender's devices with published keys),
    within each target's bounds, then push it to the target if it is connected."""
    published = await parts.device_keys.published_devices(user_id)
    for i, wanted in enumerate(request.messages):
        if wanted.device_id not in published:
            raise ParleyError.not_found(
                f"data.messages[{i}].device_id: no device of yours with published keys by that id"
            )
    expires_at = now + parts.device_message_ttl
    batch = new_id("dm")  # ids ascend with time, and within the request in its order
    messages = [
        DeviceMessage(f"{batch}.{i:02d}", user_id, m.device_id, device_id, m.sender_key, m.type, m.body, now, expires_at)
        for i, m in enumerate(request.messages)
    ]
    by_target: dict[str, list[DeviceMessage]] = defaultdict(list)
    for message in messages:
        by_target[message.device_id].append(message)
    for target, adding in by_target.items():
        count, size = await parts.device_messages.waiting(user_id, target)
        if count + len(adding) > parts.device_messages_max or size + sum(m.size for m in adding) > parts.device_messages_max_bytes:
            raise ParleyError.conflict(
                f"device {target} has too much waiting ({count} messages); it must acknowledge some first"
            )
    await parts.device_messages.add(messages)
    for target, adding in by_target.items():
        await parts.deliver.to_device(user_id, target, [m.push() for m in adding])
    return e2e.DevicesSendReply(ids=[m.message_id for m in messages])


async def acknowledge(request: e2e.DevicesAck, user_id: str, device_id: str, parts: DeviceMessageParts) -> None:
    """The device has them: deleted (ids it does not hold, or held no more, change nothing)."""
    await parts.device_messages.acknowledge(user_id, device_id, list(dict.fromkeys(request.ids)))


async def stream_waiting(sock: DeviceSocket, now: datetime, parts: WaitingParts) -> None:
    """What waits for a freshly bound socket's device, pushed to that socket (before its
    `sync.done`), oldest first, in pushes of at most SYNC_CHUNK_BYTES."""
    waiting = await parts.device_messages.for_device(sock.user_id, sock.device_id, now, parts.device_messages_max)
    chunk: list[DeviceMessage] = []
    for message in waiting:
        if chunk and sum(m.size for m in chunk) + message.size > SYNC_CHUNK_BYTES:
            await parts.deliver.to_socket(sock, [m.push() for m in chunk], sync=True)
            chunk = []
        chunk.append(message)
    if chunk:
        await parts.deliver.to_socket(sock, [m.push() for m in chunk], sync=True)
