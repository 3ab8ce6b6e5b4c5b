"""Files shared in chat, end to end: upload, send, sync to an offline recipient, download."""
import hashlib
import os

import httpx

from tests.support.client import befriend, log_in_again, new_user


async def upload(port: int, token: str, body: bytes, name: str, content_type: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}", "X-File-Name": name}
    if content_type:
        headers["Content-Type"] = content_type
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        reply = await http.post("/files", content=body, headers=headers)
    assert reply.status_code == 201, reply.text
    return reply.json()


async def download(port: int, token: str, file_id: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        return await http.get(f"/files/{file_id}", headers={"Authorization": f"Bearer {token}"})


async def test_a_file_sent_to_an_offline_friend_arrives_on_sync_and_downloads_intact(port: int, other_port: int) -> None:
    alice, bob, stranger = await new_user(port), await new_user(port), await new_user(port)
    await befriend(alice, bob)
    await bob.close()

    voice = os.urandom(3 * 1024 * 1024 + 17)
    info = await upload(port, alice.token, voice, "voice%20note.ogg", "audio/ogg")
    assert info["size"] == len(voice) and info["sha256"] == hashlib.sha256(voice).hexdigest()
    sent = await alice.call("message.send", {"to": {"user_id": bob.user_id}, "client_msg_id": "v1",
                                             "file_id": info["file_id"], "text": "listen"})

    back = await log_in_again(bob, other_port)
    assert await back.wait_synced() == 1
    message = back.inbox[sent["conversation_id"]][sent["seq"]]
    assert message["file"] == {"file_id": info["file_id"], "name": "voice note.ogg", "size": len(voice),
                               "content_type": info["content_type"]}
    got = await download(other_port, back.token, info["file_id"])
    assert got.status_code == 200 and hashlib.sha256(got.content).digest() == hashlib.sha256(voice).digest()

    # A stranger gets 404, exactly as for a file that does not exist; so does a forged send.
    denied = await download(port, stranger.token, info["file_id"])
    missing = await download(port, stranger.token, "f_does_not_exist")
    assert denied.status_code == missing.status_code == 404 and denied.json() == missing.json()
    await befriend(stranger, back)
    forged = await stranger.reply("message.send", {"to": {"user_id": back.user_id}, "client_msg_id": "x",
                                                   "file_id": info["file_id"]})
    assert forged["error"]["code"] == "not_found"

    # Recalled: the recipient loses access.
    await alice.call("message.recall", {"message_id": sent["message_id"]})
    assert (await download(port, back.token, info["file_id"])).status_code == 404
    assert (await download(port, alice.token, info["file_id"])).status_code == 200  # the uploader keeps it
    for client in (alice, back, stranger):
        await client.close()


async def test_group_members_download_a_file_sent_to_the_group(port: int) -> None:
    alice, bob, carol, later = [await new_user(port) for _ in range(4)]
    created = await alice.call("groups.create", {"name": "Photos", "member_ids": [bob.user_id, carol.user_id]})
    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + os.urandom(2000)
    info = await upload(port, alice.token, png, "pic.png", "text/plain")  # a wrong type: sniffed
    assert info["content_type"] == "image/png"
    await alice.call("message.send", {"to": {"group_id": created["group_id"]}, "client_msg_id": "p1",
                                      "file_id": info["file_id"]})
    pushed = await carol.next_push("message.new")
    assert pushed["file"]["file_id"] == info["file_id"] and "text" not in pushed
    for member in (bob, carol):
        got = await download(port, member.token, info["file_id"])
        assert got.status_code == 200 and got.content == png
        assert got.headers["content-type"] == "image/png"
    await alice.call("groups.add_members", {"group_id": created["group_id"], "user_ids": [later.user_id]})
    assert (await download(port, later.token, info["file_id"])).status_code == 404  # sent before they joined
    for client in (alice, bob, carol, later):
        await client.close()
