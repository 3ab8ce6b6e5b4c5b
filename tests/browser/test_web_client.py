"""The web client at `/`, in Chromium: what two people see when they use Parley in a browser.

Each test uses fresh browser profiles (own localStorage) and fresh users, on the session's
stack (two gateways; presence expires after 3 s there, so "offline" shows within seconds).
"""
import os
import re
import struct
import zlib

from playwright.async_api import Page, expect

PASSWORD = "correct horse battery"


def png(width: int, height: int) -> bytes:
    """A real PNG of width x height grey pixels (the browser must decode it to show it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def unique(prefix: str) -> str:
    return f"{prefix}{os.urandom(3).hex()}"


def by_id(page: Page, testid: str):
    return page.get_by_test_id(testid)


async def log_in(page: Page, username: str) -> None:
    await by_id(page, "auth-username").fill(username)
    await by_id(page, "auth-password").fill(PASSWORD)
    await by_id(page, "auth-login").click()
    await expect(by_id(page, "me")).to_contain_text(username, timeout=15_000)
    await expect(by_id(page, "connection-status")).to_contain_text("Connected", timeout=15_000)


async def register(page: Page, username: str, display_name: str | None = None) -> None:
    """Register and land on the main screen, connected."""
    await by_id(page, "auth-username").fill(username)
    await by_id(page, "auth-password").fill(PASSWORD)
    if display_name is not None:
        await by_id(page, "auth-display-name").fill(display_name)
    await by_id(page, "auth-register").click()
    await expect(by_id(page, "me")).to_contain_text(username, timeout=15_000)
    await expect(by_id(page, "connection-status")).to_contain_text("Connected", timeout=15_000)


async def befriend(asker: Page, asked: Page, asked_name: str) -> None:
    """`asker` finds `asked` by name and asks; `asked` accepts the incoming request."""
    await by_id(asker, "search-input").fill(asked_name)
    result = by_id(asker, "search-result").filter(has_text=asked_name)
    await result.get_by_test_id("add-friend").click()
    request = by_id(asked, "friend-request")
    await expect(request).to_have_count(1, timeout=10_000)
    await request.get_by_test_id("accept-request").click()


def contact(page: Page, name: str):
    return by_id(page, "contact").filter(has_text=name)


async def open_chat_with(page: Page, name: str) -> None:
    await contact(page, name).click()
    await expect(by_id(page, "composer-input")).to_be_visible()


async def send(page: Page, text: str) -> None:
    await by_id(page, "composer-input").fill(text)
    await by_id(page, "composer-input").press("Enter")


def message(page: Page, text: str):
    return by_id(page, "message").filter(has_text=text)


async def two_friends(open_page, shoot=None) -> tuple[Page, Page, str, str]:
    alice, bob = await open_page(), await open_page()
    a, b = unique("alice"), unique("bob")
    if shoot is not None:
        await shoot(alice, "login")
    await register(alice, a)
    await register(bob, b)
    await befriend(alice, bob, b)
    await expect(contact(alice, b)).to_have_count(1, timeout=10_000)
    await expect(contact(bob, a)).to_have_count(1, timeout=10_000)
    return alice, bob, a, b


async def test_two_people_befriend_chat_see_presence_and_read_state(open_page, shoot):
    alice, bob, a, b = await two_friends(open_page, shoot)
    await expect(contact(alice, b)).to_have_attribute("data-online", "true", timeout=10_000)

    await open_chat_with(alice, b)
    await send(alice, "hello bob")
    mine = message(alice, "hello bob")
    await expect(mine).to_have_attribute("data-mine", "true")
    await expect(mine).to_have_attribute("data-state", re.compile("sent|read"), timeout=10_000)

    # Bob has not opened the conversation: it waits with an unread badge.
    conversation = by_id(bob, "conversation").filter(has_text=a)
    await expect(conversation.get_by_test_id("unread-badge")).to_have_text("1", timeout=10_000)
    await conversation.click()
    await expect(message(bob, "hello bob")).to_have_attribute("data-mine", "false", timeout=10_000)
    await expect(conversation.get_by_test_id("unread-badge")).to_have_count(0)
    await expect(mine).to_have_attribute("data-state", "read", timeout=10_000)

    # Typing shows on the other side; the reply arrives.
    await by_id(bob, "composer-input").press_sequentially("hi al", delay=30)
    await expect(by_id(alice, "typing-indicator")).to_contain_text("typing", timeout=10_000)
    await by_id(bob, "composer-input").fill("hi alice")
    await by_id(bob, "send-button").click()
    await expect(message(alice, "hi alice")).to_have_count(1, timeout=10_000)
    await shoot(alice, "chat-desktop")

    # Bob closes his tab: Alice sees him go offline, with a last-seen time.
    await bob.close()
    await expect(contact(alice, b)).to_have_attribute("data-online", "false", timeout=15_000)
    await expect(contact(alice, b).get_by_test_id("last-seen")).to_be_visible()


async def test_a_device_that_was_offline_catches_up_on_return_in_order(open_page):
    alice, bob, a, b = await two_friends(open_page)
    profile = bob.context
    await bob.close()  # the token stays in the profile: the next tab resumes the session
    await open_chat_with(alice, b)
    texts = [f"while you were away {i}" for i in range(1, 6)]
    for text in texts:
        await send(alice, text)
        await expect(message(alice, text)).to_have_attribute("data-state", re.compile("sent|read"), timeout=10_000)

    bob = await open_page(context=profile)
    await expect(by_id(bob, "me")).to_contain_text(b, timeout=15_000)  # no login form: resumed
    await expect(by_id(bob, "connection-status")).to_contain_text("Connected", timeout=15_000)
    conversation = by_id(bob, "conversation").filter(has_text=a)
    await expect(conversation.get_by_test_id("unread-badge")).to_have_text("5", timeout=10_000)
    await conversation.click()
    # All five, once each, in the order sent.
    away = by_id(bob, "message").filter(has_text="while you were away")
    await expect(away).to_have_text([re.compile(re.escape(text)) for text in texts], timeout=10_000)


async def test_a_dropped_connection_reconnects_by_itself_and_catches_up(open_page):
    alice, bob, a, b = await two_friends(open_page)
    await open_chat_with(bob, a)
    sockets = []

    async def keep(route):  # pass every socket through, keeping hold of it to cut it later
        route.connect_to_server()
        sockets.append(route)

    await bob.route_web_socket(re.compile(r".*/ws$"), keep)
    await bob.reload()
    await expect(by_id(bob, "connection-status")).to_contain_text("Connected", timeout=15_000)
    await open_chat_with(bob, a)
    assert sockets, "the page's socket did not go through the route"

    await sockets[-1].close(code=1012, reason="restart")
    await open_chat_with(alice, b)
    await send(alice, "sent during the outage")
    await expect(by_id(bob, "connection-status")).to_contain_text(re.compile("Reconnecting|Catching up|Connected"))
    await expect(message(bob, "sent during the outage")).to_have_count(1, timeout=20_000)
    await expect(by_id(bob, "connection-status")).to_contain_text("Connected", timeout=15_000)
    assert len(sockets) >= 2, "no new socket was opened after the drop"


async def test_an_image_is_shown_inline_and_a_file_downloads_intact(open_page, shoot, tmp_path):
    alice, bob, a, b = await two_friends(open_page)
    image = tmp_path / "dot.png"
    image.write_bytes(png(37, 21))
    notes = tmp_path / "notes.txt"
    notes.write_bytes("Parley notes — ünïcödé\n".encode() * 200)

    await open_chat_with(alice, b)
    await by_id(alice, "file-input").set_input_files(str(image))
    await open_chat_with(bob, a)
    shown = by_id(bob, "message-image")
    await expect(shown).to_have_count(1, timeout=20_000)
    await bob.wait_for_function(  # decoded from the downloaded bytes: the browser knows its width
        "() => { const img = document.querySelector('[data-testid=message-image]');"
        " return img !== null && img.complete && img.naturalWidth === 37; }", timeout=10_000)

    await by_id(alice, "file-input").set_input_files(str(notes))
    link = by_id(bob, "file-link").filter(has_text="notes.txt")
    await expect(link).to_have_count(1, timeout=20_000)
    async with bob.expect_download() as download_info:
        await link.click()
    download = await download_info.value
    assert download.suggested_filename == "notes.txt"
    assert (await download.path()).read_bytes() == notes.read_bytes()
    await shoot(bob, "files")


async def test_groups_are_created_and_members_managed(open_page):
    alice, bob, a, b = await two_friends(open_page)
    await by_id(alice, "new-group").click()
    await by_id(alice, "group-name").fill("Climbing club")
    await by_id(alice, "group-member-option").filter(has_text=b).click()
    await by_id(alice, "create-group").click()
    await expect(by_id(alice, "composer-input")).to_be_visible(timeout=10_000)
    await send(alice, "welcome to the club")

    group = by_id(bob, "conversation").filter(has_text="Climbing club")
    await expect(group).to_have_count(1, timeout=10_000)
    await group.click()
    await expect(message(bob, "welcome to the club")).to_have_count(1, timeout=10_000)
    members = by_id(bob, "group-members")
    await expect(members).to_contain_text(a)
    await expect(members).to_contain_text(b)

    await by_id(bob, "leave-group").click()
    await expect(by_id(bob, "conversation").filter(has_text="Climbing club")).to_have_count(0, timeout=10_000)
    await alice.get_by_test_id("conversation").filter(has_text="Climbing club").click()
    await expect(by_id(alice, "group-members")).not_to_contain_text(b, timeout=10_000)


async def test_errors_are_told_in_words_and_change_nothing(open_page):
    page = await open_page()
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    await page.reload()  # the login screen again, its console watched from the start
    name = unique("carol")
    await by_id(page, "auth-username").fill(name)
    await by_id(page, "auth-password").fill("short")
    await by_id(page, "auth-register").click()
    await expect(by_id(page, "auth-error")).to_contain_text(re.compile("password", re.I), timeout=10_000)
    await expect(by_id(page, "me")).to_have_count(0)

    await by_id(page, "auth-username").fill(unique("nobody"))
    await by_id(page, "auth-password").fill(PASSWORD)
    await by_id(page, "auth-login").click()
    await expect(by_id(page, "auth-error")).to_contain_text(re.compile("username or password", re.I), timeout=10_000)
    assert not [text for text in console_errors if "render failed" in text]  # no view trips over the detached chat screen


async def test_a_phone_sized_screen_shows_one_pane_at_a_time(open_page, shoot):
    from tests.browser.conftest import PHONE

    alice, bob, a, b = await two_friends(open_page)
    phone = await open_page(viewport=PHONE)  # Alice's phone: another device
    await log_in(phone, a)
    await expect(contact(phone, b)).to_be_visible()
    await shoot(phone, "contacts-phone")
    await open_chat_with(phone, b)
    await expect(contact(phone, b)).not_to_be_visible()  # the pane replaced the list
    await send(phone, "from my phone")
    await expect(message(phone, "from my phone")).to_have_attribute("data-state", re.compile("sent|read"), timeout=10_000)
    await shoot(phone, "chat-phone")
