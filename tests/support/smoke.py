"""The protocol smoke a deployment must pass (images, Compose): what a user does first.

Register two users, befriend, chat both ways, an offline device catching up in order, and a
file uploaded and downloaded intact. `leave_offline_messages` / `collect_offline_messages`
split the offline part across a restart: what was acknowledged before it must all be there after.
"""
import hashlib
import os
from dataclasses import dataclass

import httpx

from tests.support.client import Client, befriend, log_in_again, new_user


@dataclass
class Waiting:
    """Messages sent to a user whose device was offline: they must reach it, in order."""

    sender: Client
    recipient: Client
    texts: list[str]
    conversation_id: str


async def leave_offline_messages(port: int, count: int = 5) -> Waiting:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    await bob.close()
    texts = [f"while you were away {i}" for i in range(count)]
    sent = [await alice.send_text(bob.user_id or "", text) for text in texts]
    return Waiting(alice, bob, texts, sent[0]["conversation_id"])


async def collect_offline_messages(port: int, waiting: Waiting) -> None:
    """The recipient's device comes back (on `port`) and gets every message, in order, once."""
    bob = await log_in_again(waiting.recipient, port)
    await bob.wait_synced()
    assert bob.texts(waiting.conversation_id)[-len(waiting.texts):] == waiting.texts
    assert bob.duplicates == 0
    await bob.ack_all()
    await bob.close()


async def protocol_smoke(port: int, upload_bytes: int = 300_000) -> None:
    """Everything a first user does, through the gateway on `port`."""
    waiting = await leave_offline_messages(port)
    alice = waiting.sender
    await collect_offline_messages(port, waiting)
    bob = await log_in_again(waiting.recipient, port)
    await bob.wait_synced()
    # Live, both ways.
    await alice.send_text(bob.user_id or "", "hello from the container")
    assert (await bob.next_push("message.new"))["text"] == "hello from the container"
    await bob.send_text(alice.user_id or "", "hello back")
    assert (await alice.next_push("message.new"))["text"] == "hello back"
    # A file, streamed up and down.
    body = os.urandom(upload_bytes)
    headers = {"Authorization": f"Bearer {alice.token}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        uploaded = await http.post(
            "/files", content=body, headers={**headers, "Content-Type": "application/octet-stream", "X-File-Name": "x.bin"}
        )
        assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json()["sha256"] == hashlib.sha256(body).hexdigest()
        downloaded = await http.get(f"/files/{uploaded.json()['file_id']}", headers=headers)
        assert downloaded.status_code == 200 and downloaded.content == body
    await alice.close()
    await bob.close()


__all__ = ["Waiting", "collect_offline_messages", "leave_offline_messages", "protocol_smoke"]
