"""Profiles end to end (docs/protocol.md "Profiles and avatars"): profile.get/update over sockets,
avatars made by the files service and served at /images/<id> without a token, and the
`profile.changed` event auth publishes (chat turns it into `profile.updated` pushes)."""
import asyncio
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from PIL import Image

from shared.broker import Names
from shared.settings import Settings
from tests.integration.test_files_http import http, upload
from tests.support.client import Client, ReplyError, befriend, new_user

NOT_AN_IMAGE = "data.avatar_file_id: not an image (PNG, JPEG, GIF or WebP)"


def png(size: tuple[int, int], color: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


async def uploaded(client: Client, data: bytes, name: str, content_type: str | None = None) -> str:
    response = await upload(client.port, client.token, data, name=name, content_type=content_type)
    assert response.status_code == 201, response.text
    return str(response.json()["file_id"])


async def refused(client: Client, data: dict[str, Any]) -> ReplyError:
    with pytest.raises(ReplyError) as exc:
        await client.call("profile.update", data)
    return exc.value


class ProfileEvents:
    """What auth publishes as `profile.changed` on the run's events exchange."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await self.received.put(json.loads(message.body))

    async def next_for(self, user_id: str, timeout: float = 10) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while True:
                event = await self.received.get()
                if event["user"]["user_id"] == user_id:
                    return event["user"]

        return await asyncio.wait_for(wait(), timeout)


@pytest.fixture
async def profile_events(settings: Settings, port: int) -> AsyncIterator[ProfileEvents]:
    events = ProfileEvents()
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(Names(settings.namespace).events)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, "profile.changed")
        await queue.consume(events.on_message, no_ack=True)
        yield events


async def test_display_name_change_is_seen_by_everyone_and_announced(
    port: int, other_port: int, profile_events: ProfileEvents
) -> None:
    alice, bob = await new_user(port), await new_user(other_port)
    await befriend(alice, bob)
    before = await bob.call("profile.get", {"user_id": alice.user_id})
    assert before == {"user_id": alice.user_id, "username": alice.username, "display_name": alice.username, "avatar_url": None}

    changed = await alice.call("profile.update", {"display_name": "Alice in Wonderland"})
    assert changed == {**before, "display_name": "Alice in Wonderland"}
    assert await profile_events.next_for(alice.user_id) == changed
    assert (await bob.next_push("profile.updated"))["user"] == changed
    assert (await alice.next_push("profile.updated"))["user"] == changed  # her own devices too
    assert await bob.call("profile.get", {"user_id": alice.user_id}) == changed
    found = await bob.call("users.search", {"query": "alice in"})
    assert changed in found["users"]

    with pytest.raises(ReplyError) as unknown:
        await bob.call("profile.get", {"user_id": "u_nobody"})
    assert unknown.value.code == "not_found"
    for client in (alice, bob):
        await client.close()


async def test_avatar_from_an_upload_is_a_256_webp_served_without_a_token(
    port: int, profile_events: ProfileEvents
) -> None:
    alice = await new_user(port)
    file_id = await uploaded(alice, png((300, 200)), "me.png")
    profile = await alice.call("profile.update", {"avatar_file_id": file_id})
    url = profile["avatar_url"]
    assert url.startswith("/images/i_") and profile["display_name"] == alice.username
    assert (await profile_events.next_for(alice.user_id))["avatar_url"] == url

    async with http(port) as web:
        served = await web.get(url)  # no Authorization
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/webp"
        assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
        image = Image.open(io.BytesIO(served.content))
        assert (image.format, image.size) == ("WEBP", (256, 256))
        etag = served.headers["etag"]
        again = await web.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        # The original upload is untouched, and is still no public image.
        assert (await web.get(f"/images/{file_id}")).status_code == 404

    search = await alice.call("users.search", {"query": alice.username})
    assert search["users"][0]["avatar_url"] == url
    # A new avatar is a new URL (the old one stays cacheable for good).
    renewed = await alice.call("profile.update", {"avatar_file_id": file_id})
    assert renewed["avatar_url"] not in (None, url)
    cleared = await alice.call("profile.update", {"clear_avatar": True})
    assert cleared["avatar_url"] is None
    assert (await profile_events.next_for(alice.user_id))["avatar_url"] == renewed["avatar_url"]
    assert (await profile_events.next_for(alice.user_id))["avatar_url"] is None
    assert (await alice.call("profile.get", {"user_id": alice.user_id}))["avatar_url"] is None
    await alice.close()


async def test_avatar_refusals_change_nothing(port: int) -> None:
    alice, mallory = await new_user(port), await new_user(port)
    text = await uploaded(alice, b"not a picture at all", "notes.txt", "text/plain")
    refusal = await refused(alice, {"avatar_file_id": text, "display_name": "Changed"})
    assert (refusal.code, refusal.message) == ("bad_request", NOT_AN_IMAGE)
    # An image someone else uploaded (and never sent her) is as if it did not exist.
    hers = await uploaded(alice, png((64, 64)), "alice.png")
    assert (await refused(mallory, {"avatar_file_id": hers})).code == "not_found"
    assert (await refused(mallory, {"avatar_file_id": "f_missing"})).code == "not_found"
    assert (await refused(alice, {"avatar_file_id": hers, "clear_avatar": True})).code == "bad_request"
    assert (await refused(alice, {"display_name": "   "})).code == "bad_request"
    profile = await alice.call("profile.get", {"user_id": alice.user_id})
    assert profile["display_name"] == alice.username and profile["avatar_url"] is None
    for client in (alice, mallory):
        await client.close()
