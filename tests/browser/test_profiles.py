"""Profiles, avatars and blocking in the web client, in Chromium (docs/protocol.md "Profiles and
avatars", "Blocking"): a new name and picture reach a friend's screen without a reload; a block
ends the friendship, refuses the blocked user's messages and lists them for unblocking.
"""
import re
import struct
import zlib

from playwright.async_api import expect

from tests.browser.test_web_client import by_id, contact, open_chat_with, send, two_friends, unique

AVATAR_URL = re.compile(r"^/images/[^/]+$")


def gradient_png(width: int, height: int) -> bytes:
    """A real PNG with a colour gradient (a picture worth showing in the screenshot)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def pixel(x: int, y: int) -> bytes:
        return bytes((255 * x // width, 90 + 120 * y // height, 230 - 150 * x // width))

    rows = b"".join(b"\x00" + b"".join(pixel(x, y) for x in range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def test_profile_name_and_avatar_reach_a_friend_then_blocking(open_page, shoot, tmp_path):
    alice, bob, a, b = await two_friends(open_page)
    await open_chat_with(bob, a)

    # Alice edits her profile: a picture (uploaded, then set) and a display name.
    await by_id(alice, "open-profile").click()
    editor = by_id(alice, "profile-dialog")
    await expect(editor).to_be_visible()
    await expect(by_id(alice, "profile-username")).to_have_text(f"@{a}")
    picture = tmp_path / "me.png"
    picture.write_bytes(gradient_png(300, 200))
    await by_id(alice, "avatar-input").set_input_files(str(picture))
    await expect(editor.locator(".profile-head img")).to_have_attribute("src", AVATAR_URL, timeout=15_000)
    await expect(by_id(alice, "remove-avatar")).to_be_visible()
    new_name = unique("Alice L ")
    await by_id(alice, "profile-display-name").fill(new_name)
    await by_id(alice, "profile-save").click()
    await expect(editor).to_be_hidden()
    await expect(by_id(alice, "open-profile").locator("img")).to_have_attribute("src", AVATAR_URL)

    # Bob sees both at once, in his contacts and in the open chat's header: no reload.
    friend = contact(bob, new_name)
    await expect(friend).to_have_count(1, timeout=10_000)
    await expect(friend.locator("img")).to_have_attribute("src", AVATAR_URL)
    await expect(bob.locator("#chat-title")).to_have_text(new_name)
    await expect(by_id(bob, "chat-peer").locator("img")).to_have_attribute("src", AVATAR_URL)
    src = await friend.locator("img").get_attribute("src")
    assert await bob.evaluate("(src) => fetch(src).then((r) => r.status)", src) == 200
    await by_id(bob, "contact-profile").and_(bob.get_by_role("button", name=f"Profile of {new_name}")).click()
    card = by_id(bob, "user-profile")
    await expect(card.get_by_test_id("user-profile-name")).to_have_text(new_name)
    await expect(card.get_by_test_id("user-profile-username")).to_have_text(f"@{a}")
    await expect(card.locator("img")).to_have_attribute("src", src)
    await bob.keyboard.press("Escape")
    await expect(card).to_be_hidden()

    # In a group, her messages carry her avatar, and so does the members list.
    await by_id(alice, "new-group").click()
    await by_id(alice, "group-name").fill("Picnic")
    await by_id(alice, "group-member-option").filter(has_text=b).click()
    await by_id(alice, "create-group").click()
    await expect(alice.locator("#chat-title")).to_have_text("Picnic", timeout=10_000)
    await send(alice, "bring plums")
    await by_id(bob, "conversation").filter(has_text="Picnic").click()
    said = by_id(bob, "message").filter(has_text="bring plums")
    await expect(said.get_by_test_id("sender-avatar").locator("img")).to_have_attribute("src", src, timeout=10_000)
    await expect(said).to_contain_text(new_name)
    member = by_id(bob, "group-member").filter(has_text=new_name)
    await expect(member.locator("img")).to_have_attribute("src", src, timeout=10_000)

    # Alice blocks Bob from the chat's header, after a confirmation: he leaves her contacts.
    await open_chat_with(alice, b)
    await expect(alice.locator("#chat-title")).to_have_text(b)
    await by_id(alice, "block-peer").click()
    await expect(by_id(alice, "confirm-dialog")).to_contain_text("Block")
    await by_id(alice, "confirm-ok").click()
    await expect(contact(alice, b)).to_have_count(0, timeout=10_000)
    await expect(by_id(alice, "block-peer")).to_have_text("Unblock")

    # Bob's message to her is refused, and he is told (he still sees her as a contact).
    await open_chat_with(bob, a)
    await expect(bob.locator("#chat-title")).to_have_text(new_name)  # the group's composer is gone
    await send(bob, "are you there?")
    mine = by_id(bob, "message").filter(has_text="are you there?")
    await expect(mine).to_have_attribute("data-state", "failed", timeout=10_000)
    await expect(by_id(bob, "error-banner")).to_contain_text("only message your friends")

    # Alice's profile lists him as blocked, with Unblock.
    await by_id(alice, "open-profile").click()
    blocked = by_id(alice, "blocked-user").filter(has_text=b)
    await expect(blocked).to_have_count(1, timeout=10_000)
    await shoot(alice, "profile")
    await blocked.get_by_test_id("unblock").click()
    await expect(blocked).to_have_count(0, timeout=10_000)
    await by_id(alice, "profile-close").click()
    await expect(by_id(alice, "block-peer")).to_have_text("Block")
