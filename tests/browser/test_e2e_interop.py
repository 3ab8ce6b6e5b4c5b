"""libolm (the web page) and vodozemac (the Python client, parley_client.e2e) talk end to end in
an encrypted direct conversation (docs/security.md): text and a file both ways, and the same
safety number on both sides.

The Python client is this worktree's (clients/python, put first on sys.path below: the venv's
parley_client may be another checkout's).
"""
import asyncio
import re
import secrets
import sys
from pathlib import Path
from typing import Any

from playwright.async_api import expect

from tests.browser.test_e2e import encrypted_message
from tests.browser.test_web_client import by_id, open_chat_with, register, send, unique

CLIENTS = str(Path(__file__).resolve().parents[2] / "clients" / "python")
if CLIENTS not in sys.path:
    sys.path.insert(0, CLIENTS)
from parley_client import ParleyClient  # noqa: E402

PASSWORD = "correct horse battery"


async def next_of(client: ParleyClient, kind: str, timeout: float = 20) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        return await client.next_push(kind, timeout)


async def test_the_web_page_and_the_python_client_talk_encrypted_and_agree_on_the_safety_number(open_page, base_url, tmp_path):
    alice, a = await open_page(), unique("alice")
    await register(alice, a)
    await expect(alice.locator("body")).to_have_attribute("data-e2e", "ready", timeout=20_000)
    alice_id = await alice.evaluate("() => JSON.parse(localStorage.getItem('parley.user')).user_id")

    b = f"py_{secrets.token_hex(4)}"
    bob = ParleyClient(base_url, request_timeout=20)
    await bob.register(b, PASSWORD)
    await bob.e2e.enable(tmp_path / "bob.e2e")
    await bob.login(b, PASSWORD, "py-laptop")
    await bob.wait_synced()
    for _ in range(100):
        if bob.e2e.device is not None and bob.e2e._ready.is_set():
            break
        await asyncio.sleep(0.1)
    try:
        assert bob.user_id
        await bob.call("friends.request", {"user_id": alice_id})
        request = by_id(alice, "friend-request")
        await expect(request).to_have_count(1, timeout=10_000)
        await request.get_by_test_id("accept-request").click()
        await next_of(bob, "friend.accepted")

        # Python turns encryption on; the page sees it.
        await bob.e2e.encrypt_conversation(alice_id)
        await open_chat_with(alice, b)
        await expect(by_id(alice, "e2e-badge")).to_be_visible(timeout=15_000)

        # vodozemac -> libolm: text.
        from_python = f"hello from vodozemac {unique('p')}"
        await bob.e2e.send(alice_id, from_python)
        await expect(encrypted_message(alice, from_python)).to_have_count(1, timeout=20_000)

        # libolm -> vodozemac: text.
        from_web = f"hello from libolm {unique('w')}"
        await send(alice, from_web)
        got = await next_of(bob, "message.new")
        while got.get("text") != from_web:
            got = await next_of(bob, "message.new")
        assert got["text"] == from_web and "encrypted" not in got

        # A file each way (AES-256-GCM, the key inside the Olm payload).
        content = b"interop notes\n" * 300 + secrets.token_bytes(64)
        await bob.e2e.send_file(alice_id, content, "py-notes.bin", "application/octet-stream")
        link = by_id(alice, "file-link").filter(has_text="py-notes.bin")
        await expect(link).to_have_count(1, timeout=20_000)
        async with alice.expect_download() as download_info:
            await link.click()
        download = await download_info.value
        assert download.suggested_filename == "py-notes.bin"
        assert (await download.path()).read_bytes() == content

        web_file = tmp_path / "web-notes.txt"
        web_file.write_bytes("from the browser — ünïcödé\n".encode() * 100)
        await by_id(alice, "file-input").set_input_files(str(web_file))
        with_file = await next_of(bob, "message.new")
        while not with_file.get("file"):
            with_file = await next_of(bob, "message.new")
        assert with_file["file"]["name"] == "web-notes.txt"
        assert await bob.e2e.download_file(with_file) == web_file.read_bytes()

        # The same safety number on both sides.
        await by_id(alice, "e2e-badge").click()
        digits = by_id(alice, "safety-number")
        await expect(digits).to_have_attribute("data-digits", re.compile(r"^\d{60}$"), timeout=15_000)
        shown = await digits.get_attribute("data-digits")
        python_number = (await bob.e2e.safety_number(alice_id)).replace(" ", "")
        assert shown == python_number
    finally:
        await bob.close()
