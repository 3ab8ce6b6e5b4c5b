"""To-device messages (docs/security.md "To-device messages"): Olm ciphertexts from one device to
another, of the same user or of one who shares an end-to-end encrypted conversation with the
sender, kept until the target acknowledges them and pushed to it live and on every bind before
`sync.done`. This is how one of my devices gives a new one my history, and how a device shares
its Megolm room key with the other devices of a group; the server can do neither."""
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Protocol

from services.chat.domain.ports import Conversations, DeviceKeys, DeviceMessages
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
    """The waiting messages, who shares an encrypted conversation with whom, auth's key directory
    (which devices can be written to), pushes, and the bounds (the device_message_* settings)."""

    @property
    def conversations(self) -> Conversations: ...

    @property
    def device_keys(self) -> DeviceKeys: ...

    @property
    def device_message_ttl(self) -> timedelta: ...

    @property
    def device_messages_max_bytes(self) -> int: ...


async def send_to_devices(
    request: e2e.DevicesSend, user_id: str, device_id: str, now: datetime, parts: DeviceMessageParts
) -> e2e.DevicesSendReply:
    """Store each message for its target (a device with published keys, of the sender or of a
    user sharing an encrypted conversation with them), within each target's bounds, then push it
    to the target if it is connected."""
    targets = [(m.user_id or user_id, m.device_id) for m in request.messages]
    await _may_write_to(targets, user_id, parts)
    expires_at = now + parts.device_message_ttl
    batch = new_id("dm")  # ids ascend with time, and within the request in its order
    messages = [
        DeviceMessage(
            f"{batch}.{i:02d}", target_user, target_device, user_id, device_id, m.sender_key, m.type, m.body, now,
            expires_at,
        )
        for i, ((target_user, target_device), m) in enumerate(zip(targets, request.messages, strict=True))
    ]
    by_target: dict[tuple[str, str], list[DeviceMessage]] = defaultdict(list)
    for message in messages:
        by_target[message.user_id, message.device_id].append(message)
    for (target_user, target), adding in by_target.items():
        count, size = await parts.device_messages.waiting(target_user, target)
        if count + len(adding) > parts.device_messages_max or size + sum(m.size for m in adding) > parts.device_messages_max_bytes:
            raise ParleyError.conflict(
                f"device {target} has too much waiting ({count} messages); it must acknowledge some first"
            )
    await parts.device_messages.add(messages)
    for (target_user, target), adding in by_target.items():
        await parts.deliver.to_device(target_user, target, [m.push() for m in adding])
    return e2e.DevicesSendReply(ids=[m.message_id for m in messages])


async def _may_write_to(targets: list[tuple[str, str]], user_id: str, parts: DeviceMessageParts) -> None:
    """Each target is the sender's own device or the device of a user who shares an encrypted
    conversation with them (else `forbidden`), and has published keys (else `not_found`): one
    read of the sender's encrypted conversations (only if another user is named), one ask of
    auth's key directory."""
    users = list(dict.fromkeys(u for u, _ in targets))
    if any(u != user_id for u in users):
        peers = await parts.conversations.encrypted_peers(user_id)
        for i, (target_user, _) in enumerate(targets):
            if target_user != user_id and target_user not in peers:
                raise ParleyError.forbidden(
                    f"data.messages[{i}].user_id: you share no end-to-end encrypted conversation with this user"
                )
    published = await parts.device_keys.published_devices(users)
    for i, target in enumerate(targets):
        if target not in published:
            whose = "of yours" if target[0] == user_id else "of that user"
            raise ParleyError.not_found(f"data.messages[{i}].device_id: no device {whose} with published keys by that id")


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
