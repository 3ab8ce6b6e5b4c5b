"""To-device messages (docs/security.md "To-device messages"): Olm ciphertexts from one of a
user's devices to another of theirs (step one: own devices only), kept until the target
acknowledges them and pushed to it live and on every bind before `sync.done`. This is how one
of my devices gives a new one my history; the server never can."""
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Protocol

from services.chat.domain.messaging import device_message_push
from services.chat.domain.ports import DeviceKeys, DeviceMessages
from services.chat.domain.records import DeviceMessage
from shared.contracts import e2e
from shared.contracts.errors import ParleyError
from shared.delivery import Deliverer
from shared.ids import new_id


class DeviceMessageParts(Protocol):
    """The waiting messages, auth's key directory (which devices can be written to), pushes, and
    the bounds (the device_message_* settings)."""

    @property
    def device_messages(self) -> DeviceMessages: ...

    @property
    def device_keys(self) -> DeviceKeys: ...

    @property
    def deliver(self) -> Deliverer: ...

    @property
    def device_message_ttl(self) -> timedelta: ...

    @property
    def device_messages_max(self) -> int: ...

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
        await parts.deliver.to_device(user_id, target, [device_message_push(m) for m in adding])
    return e2e.DevicesSendReply(ids=[m.message_id for m in messages])


async def acknowledge(request: e2e.DevicesAck, user_id: str, device_id: str, parts: DeviceMessageParts) -> None:
    """The device has them: deleted (ids it does not hold, or held no more, change nothing)."""
    await parts.device_messages.acknowledge(user_id, device_id, list(dict.fromkeys(request.ids)))
