"""`ParleyClient`: what a bot, a script or a test does with a session.

Sending through the outbox (retried with the same `client_msg_id` while the outcome is open),
acknowledging each conversation's unbroken run (on demand, or every `ack_interval` s), history,
and files over HTTP with the session's token. The plumbing is `Session`'s.
"""
import asyncio
import secrets
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, cast

from parley_client import files
from parley_client.errors import ParleyError, ReplyError
from parley_client.models import HistoryPage, Message, Push, Recipient, SendResult, UploadedFile
from parley_client.outbox import Attempt, RetryPolicy
from parley_client.session import Session

if TYPE_CHECKING:
    from parley_client.e2e import E2E


class ParleyClient(Session):
    """One user's device. `async with ParleyClient(url) as client: await client.login(...)`.

    See `Session` for the options (gateways, reconnect, timeouts, pushes) and the hooks.
    """

    _acker: "asyncio.Task[None] | None" = None
    _e2e: "E2E | None" = None

    def _on_bound(self) -> None:
        super()._on_bound()
        if self.ack_interval:
            self.start_acking(self.ack_interval)
        if self._e2e is not None:
            self._e2e.on_bound()

    # --- end-to-end encryption -------------------------------------------------------------------
    @property
    def e2e(self) -> "E2E":
        """End-to-end encrypted conversations (docs/security.md; the `e2e` extra): `await
        client.e2e.enable(store_path)`, then encrypted conversations are sent to and read in
        clear here, ciphertext everywhere else."""
        if self._e2e is None:
            from parley_client.e2e import E2E  # vodozemac only for those who use it
            self._e2e = E2E(self)
        return self._e2e

    def _deliver(self, push: Push) -> None:
        if self._e2e is not None and self._e2e.active:
            self._e2e.feed(push)
        else:
            self._deliver_now(push)

    # --- messages --------------------------------------------------------------------------------
    async def send(self, to: Recipient, text: str | None = None, *, file_id: str | None = None,
                   ttl_seconds: int | None = None, client_msg_id: str | None = None, policy: RetryPolicy | None = None,
                   on_attempt: Callable[[Attempt], None] | None = None, **extra: Any) -> SendResult:
        """`message.send`, tried again with the same client_msg_id while the outcome is open
        (`send_policy` unless `policy`); the stored message's seq and id. In a conversation
        encrypted end to end (`client.e2e`: direct with Olm, group with Megolm), encrypted
        (`sticker_id`, `voice`, `mentions` too)."""
        peer, group_id = to.get("user_id"), to.get("group_id")
        if self._e2e is not None and ((peer is not None and self._e2e.is_encrypted(peer))
                                      or (group_id is not None and self._e2e.is_group_encrypted(group_id))):
            if policy is not None or on_attempt is not None:
                raise ParleyError("an encrypted send takes no policy or on_attempt")
            return await self._e2e.send(to, text, file_id=file_id, ttl_seconds=ttl_seconds,
                                        client_msg_id=client_msg_id, **extra)
        cmid = client_msg_id or secrets.token_hex(8)
        data: dict[str, Any] = {"to": to, "client_msg_id": cmid, **extra}
        for key, value in (("text", text), ("file_id", file_id), ("ttl_seconds", ttl_seconds)):
            if value is not None:
                data[key] = value
        self.outbox[cmid] = data
        try:
            return cast(SendResult, await self.call("message.send", data, retry=policy or self.send_policy,
                                                    on_attempt=on_attempt))
        finally:
            self.outbox.pop(cmid, None)

    def reply_target(self, message: Message) -> Recipient:
        """Where an answer to `message` goes: its group, or the other person of a direct chat."""
        to = message["to"]
        if "group_id" in to:
            return {"group_id": to["group_id"]}
        return {"user_id": to["user_id"] if message["from_user_id"] == self.user_id else message["from_user_id"]}

    async def ack(self, conversation_id: str | None = None) -> int:
        """Acknowledge each conversation's unbroken run (or one conversation's); how many acks went.
        With end-to-end encryption on, never past an encrypted message not handled yet: each is
        decrypted, or kept sealed while its room key has not come, before it is acknowledged."""
        sent = 0
        for cid, seq in self.inbox.ack_targets().items():
            if conversation_id is not None and cid != conversation_id:
                continue
            ceiling = self._e2e.ack_ceiling(cid) if self._e2e is not None else None
            if ceiling is not None:
                seq = min(seq, ceiling)
                if seq <= self._acked(cid):
                    continue
            reply = await self.request("message.ack", {"conversation_id": cid, "seq": seq})
            if not reply["ok"]:
                error = ReplyError.from_reply(reply)
                self.stats.ack_errors += 1
                self.stats.errors[f"message.ack:{error.code}"] += 1
                raise error
            self.inbox.acknowledged(cid, seq)
            self.stats.acks_sent += 1
            sent += 1
        return sent

    def _acked(self, conversation_id: str) -> int:
        c = self.inbox._conversations.get(conversation_id)
        return 0 if c is None else c.acked

    def start_acking(self, interval: float) -> None:
        """Acknowledge every `interval` s while bound (as an app does: debounced, not per message)."""
        if interval > 0 and self._acker is None:
            self._acker = asyncio.create_task(self._ack_loop(interval))
            self._tasks.append(self._acker)

    async def _ack_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if not self.ready.is_set():
                continue
            try:
                await self.ack()
            except ReplyError:
                pass  # counted by ack()
            except (ParleyError, ConnectionError, TimeoutError):
                self.stats.ack_errors += 1

    async def history(self, conversation_id: str, before_seq: int | None = None, limit: int = 50) -> HistoryPage:
        data: dict[str, Any] = {"conversation_id": conversation_id, "limit": limit}
        if before_seq is not None:
            data["before_seq"] = before_seq
        return cast(HistoryPage, await self.call("history.fetch", data))

    async def history_all(self, conversation_id: str, retry: RetryPolicy | None = None) -> list[Message]:
        """Every message of the conversation this user may read, ascending, page by page."""
        messages: list[Message] = []
        before: dict[str, int] = {}
        while True:
            page = await self.call("history.fetch", {"conversation_id": conversation_id, "limit": 200, **before},
                                   retry=retry)
            messages = page["messages"] + messages
            if not page["has_more"] or not page["messages"]:
                return messages
            before = {"before_seq": page["messages"][0]["seq"]}

    # --- files -----------------------------------------------------------------------------------
    def _token(self) -> str:
        if not self.token:
            raise ParleyError("log in first: files need the session's token")
        return self.token

    async def upload(self, source: files.Source, name: str | None = None, content_type: str | None = None) -> UploadedFile:
        """Stream bytes, a path, a binary file or an async iterable of bytes to `POST /files`."""
        return await files.upload(self.gateway.http_url, self._token(), source, name, content_type)

    async def download(self, file_id: str, into: IO[bytes] | None = None) -> bytes:
        """The file's bytes (or written to `into`, then b"")."""
        return await files.download(self.gateway.http_url, self._token(), file_id, into)


    async def close(self) -> None:
        self._acker = None
        await super().close()
