"""Commands that carry many clients' requests in one AMQP message (gateway → chat), and the
deliveries that carry many pushes in one (chat → gateway). Never seen by clients.

Why: one broker message, one database operation and one Redis call per item made the cost of
a message the cost of a round trip; a batch makes it a share of one (issue 12). Each item keeps
its own caller and gets its own answer, so a refusal of one item answers that item only.
"""
from typing import Annotated, Any

from pydantic import Field

from shared.contracts.base import Contract
from shared.contracts.chat import MessageAck, MessageSend
from shared.contracts.errors import ErrorBody, ParleyError
from shared.contracts.wire import Caller, Delivery

# Items per batch: a gateway sends no more in one command (chat refuses more).
MAX_BATCH_ITEMS = 512


class SendItem(Contract):
    caller: Caller
    request: MessageSend


class SendBatch(Contract):
    """message.sends from one gateway, in the order each device sent them (one batch per
    device in flight at a time, so a device's messages are stored in the order it sent them)."""

    items: Annotated[list[SendItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class AckItem(Contract):
    caller: Caller
    request: MessageAck


class AckBatch(Contract):
    items: Annotated[list[AckItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class ItemResult(Contract):
    """One item's answer: `data` when ok, else `error` (a CommandResult per item)."""

    ok: bool
    data: dict[str, Any] | None = None
    error: ErrorBody | None = None

    @classmethod
    def of(cls, outcome: Contract | ParleyError) -> "ItemResult":
        if isinstance(outcome, ParleyError):
            return cls(ok=False, error=outcome.body())
        return cls(ok=True, data=outcome.model_dump(mode="json"))


class BatchReply(Contract):
    results: list[ItemResult]


class Deliveries(Contract):
    """Every push one chat batch has for the sockets of one gateway, in one broker message."""

    items: list[Delivery]
