"""Sticker and voice messages end to end (docs/protocol.md "Stickers and emoji", "Voice messages
and thumbnails"): sent over a socket, pushed to the friend, kept in history, and the sticker's
URL served by the gateway."""
import io
import os

import httpx
from PIL import Image

from tests.support.client import Client, befriend, new_user


async def upload(port: int, token: str, body: bytes, name: str, content_type: str) -> dict:
    headers = {"Authorization": f"Bearer {token}", "X-File-Name": name, "Content-Type": content_type}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        reply = await http.post("/files", content=body, headers=headers)
    assert reply.status_code == 201, reply.text
    return reply.json()


async def get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        return await http.get(path)


async def send(client: Client, to: Client, client_msg_id: str, **content) -> dict:
    return await client.reply("message.send", {"to": {"user_id": to.user_id}, "client_msg_id": client_msg_id, **content})


async def history(client: Client, conversation_id: str) -> list[dict]:
    return (await client.call("history.fetch", {"conversation_id": conversation_id}))["messages"]


async def test_a_builtin_sticker_reaches_the_friend_and_its_picture_is_served(port: int, other_port: int) -> None:
    alice, bob = await new_user(port), await new_user(other_port)
    await befriend(alice, bob)
    sent = (await send(alice, bob, "s1", sticker_id="builtin:party"))["data"]
    pushed = await bob.next_push("message.new")
    sticker = {"sticker_id": "builtin:party", "url": "/app/stickers/party.svg"}
    assert pushed["sticker"] == sticker and "text" not in pushed and "file" not in pushed

    served = await get(other_port, sticker["url"])
    assert served.status_code == 200 and served.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in served.content and b"<script" not in served.content

    unknown = await send(alice, bob, "s2", sticker_id="builtin:unicorn")
    assert unknown["error"] == {"code": "not_found", "message": "no such sticker"}
    with_text = await send(alice, bob, "s3", sticker_id="builtin:party", text="yay")
    assert with_text["error"]["code"] == "bad_request" and "sticker_id" in with_text["error"]["message"]

    assert [m.get("sticker") for m in await history(bob, sent["conversation_id"])] == [sticker]
    listed = await bob.call("conversations.list")
    entry = next(c for c in listed["conversations"] if c["conversation_id"] == sent["conversation_id"])
    assert entry["last_message"]["sticker"] == sticker
    for client in (alice, bob):
        await client.close()


async def test_a_voice_message_carries_its_audio_and_duration(port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    ogg = b"OggS\x00\x02" + os.urandom(4000)
    audio = await upload(port, alice.token, ogg, "note.ogg", "audio/ogg")
    text = await upload(port, alice.token, b"just words", "notes.txt", "text/plain")
    assert audio["content_type"] == "audio/ogg" and text["content_type"].startswith("text/plain")

    sent = (await send(alice, bob, "v1", file_id=audio["file_id"], voice={"duration_ms": 4200}))["data"]
    pushed = await bob.next_push("message.new")
    assert pushed["voice"] == {"duration_ms": 4200}
    assert pushed["file"]["file_id"] == audio["file_id"] and pushed["file"]["content_type"] == "audio/ogg"

    not_audio = await send(alice, bob, "v2", file_id=text["file_id"], voice={"duration_ms": 4200})
    assert not_audio["error"] == {"code": "bad_request", "message": "data.voice: a voice message carries an audio file"}
    for duration in (0, 900_001):
        too_short = await send(alice, bob, f"v3-{duration}", file_id=audio["file_id"], voice={"duration_ms": duration})
        assert too_short["error"]["code"] == "bad_request" and "duration_ms" in too_short["error"]["message"]
    no_file = await send(alice, bob, "v4", voice={"duration_ms": 4200}, text="hi")
    assert no_file["error"]["code"] == "bad_request"

    (kept,) = await history(bob, sent["conversation_id"])
    assert kept["voice"] == {"duration_ms": 4200} and kept["file"] == pushed["file"]
    for client in (alice, bob):
        await client.close()


def png(size: int = 64) -> bytes:
    picture = Image.new("RGBA", (size, size), (255, 80, 120, 255))
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


async def test_a_made_sticker_is_sent_and_sent_on(port: int, other_port: int) -> None:
    alice, bob, carol = await new_user(port), await new_user(other_port), await new_user(port)
    await befriend(alice, bob)
    await befriend(bob, carol)
    picture = await upload(port, alice.token, png(), "sticker.png", "image/png")
    made = await alice.call("stickers.add", {"file_id": picture["file_id"]})
    assert made["pack"] == "mine"

    await send(alice, bob, "m1", sticker_id=made["sticker_id"])
    pushed = await bob.next_push("message.new")
    assert pushed["sticker"] == {"sticker_id": made["sticker_id"], "url": made["url"]}
    served = await get(other_port, made["url"])
    assert served.status_code == 200 and served.headers["content-type"].startswith("image/")

    # Bob sends on the sticker he received; an id files never made is not found.
    await send(bob, carol, "m2", sticker_id=made["sticker_id"])
    assert (await carol.next_push("message.new"))["sticker"]["sticker_id"] == made["sticker_id"]
    unknown = await send(bob, carol, "m3", sticker_id="i_" + "0" * 32)
    assert unknown["error"] == {"code": "not_found", "message": "no such sticker"}
    for client in (alice, bob, carol):
        await client.close()
