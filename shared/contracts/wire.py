"""What travels between Parley processes on RabbitMQ (never seen by clients)."""
from typing import Any

from pydantic import Field

from shared.contracts.base import Contract
from shared.contracts.envelope import Push
from shared.contracts.errors import ErrorBody, ParleyError


class Caller(Contract):
    """Who asked: set by the gateway from the bound socket, trusted by the services."""

    request_id: str
    user_id: str | None = None
    device_id: str | None = None
    token_id: str | None = None
    token_expires_at: int | None = None
    gateway_id: str | None = None
    conn_id: str | None = None
    # The client's network address as the gateway saw it (abuse limits per address).
    client_address: str | None = None


def user_of(caller: Caller) -> str:
    """The user who asked; `unauthorized` for a command that came from no bound socket."""
    if caller.user_id is None:
        raise ParleyError.unauthorized()
    return caller.user_id


def device_of(caller: Caller) -> str:
    """The device that asked (the socket's, from auth.login); `unauthorized` without one."""
    if caller.device_id is None:
        raise ParleyError.unauthorized()
    return caller.device_id


class Command(Contract):
    """Body of a message on `parley.commands`.

    `deadline` (unix seconds): when the caller stops waiting for the answer. A replica that
    takes the command later drops it unrun, so that a backlog built up during an outage is
    not worked through for callers that have long given up (they retry with the same
    client_msg_id, and that retry is the one worth doing). One-way commands have none.
    """

    caller: Caller
    data: dict[str, Any] = Field(default_factory=dict)
    deadline: float | None = None

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now > self.deadline


class CommandResult(Contract):
    """Body of an RPC reply: `data` when ok, else `error`."""

    ok: bool
    data: dict[str, Any] | None = None
    error: ErrorBody | None = None


class DeviceAddress(Contract):
    user_id: str
    device_id: str


class Delivery(Contract):
    """Body of a message on `parley.deliver`, routed to the gateway instance holding the sockets.

    `conn_id` set: only that socket, and `sync` says these pushes are its bind-time sync
    stream (live pushes for a syncing socket wait until its `sync.done`).
    """

    targets: list[DeviceAddress] = Field(default_factory=list)
    conn_id: str | None = None
    sync: bool = False
    pushes: list[Push]
