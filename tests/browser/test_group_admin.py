"""Group administration in the web client, in Chromium (docs/protocol.md "Group administration"):
the owner renames the group and describes it from the group info panel, shares an invite link
that a third person opens and joins by, mutes her, and removes a member, as each of them sees it.

One test, fresh profiles and users on the session's stack; the info panel sits beside the chat
on this desktop-sized screen.
"""
import re
import struct
import zlib

from playwright.async_api import Page, expect

from tests.browser.test_web_client import by_id, register, send, two_friends, unique
from tests.support.waiting import eventually


def gradient_png(width: int, height: int) -> bytes:
    """A real PNG, a blue-to-orange gradient (a picture that shows in the screenshot)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(
        b"\x00" + b"".join(bytes((40 + 200 * x // width, 90 + 60 * y // height, 220 - 180 * x // width)) for x in range(width))
        for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def member(page: Page, username: str):
    return by_id(page, "group-member").filter(has_text=f"@{username}")


async def test_owner_renames_shares_a_link_mutes_and_removes(open_page, shoot, tmp_path):
    alice, bob, a, b = await two_friends(open_page)
    await by_id(alice, "new-group").click()
    await by_id(alice, "group-name").fill("Route setters")
    await by_id(alice, "group-member-option").filter(has_text=b).click()
    await by_id(alice, "create-group").click()
    await expect(by_id(alice, "group-info-panel")).to_be_visible(timeout=10_000)
    await send(alice, "first session on tuesday")

    # Rename and describe: the member's list, header and panel follow (push group.updated).
    await by_id(alice, "group-edit-name").fill("Boulder crew")
    await by_id(alice, "group-edit-description").fill("Tuesdays at 7, the north wall.")
    await by_id(alice, "group-save").click()
    await expect(by_id(alice, "group-info-name")).to_have_text("Boulder crew", timeout=10_000)
    group = by_id(bob, "conversation").filter(has_text="Boulder crew")
    await expect(group).to_have_count(1, timeout=10_000)
    await group.click()
    await expect(by_id(bob, "group-info-name")).to_have_text("Boulder crew")
    await expect(by_id(bob, "group-info-description")).to_have_text("Tuesdays at 7, the north wall.")
    await expect(by_id(bob, "group-save")).to_be_hidden()  # a plain member edits nothing
    await expect(member(bob, a)).to_contain_text("Owner")

    # A picture for the group (uploaded, then set): the member's list shows it.
    picture = tmp_path / "wall.png"
    picture.write_bytes(gradient_png(96, 64))
    await by_id(alice, "group-avatar-input").set_input_files(str(picture))
    await expect(group.locator("img")).to_have_attribute("src", re.compile(r"^/images/"), timeout=15_000)
    await expect(by_id(alice, "group-avatar-clear")).to_be_visible()

    # An invite link, opened by someone new: preview, join, and she is in.
    await alice.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await by_id(alice, "invite-max-uses").fill("5")
    await by_id(alice, "invite-create").click()
    link_field = by_id(alice, "invite-url").first
    await expect(link_field).to_have_value(re.compile(r"#join=[A-Za-z0-9_-]+$"), timeout=10_000)
    link = await link_field.input_value()
    # Copied as it was made (the page writes the clipboard a moment after showing the link).
    await eventually(lambda: alice.evaluate("async (link) => (await navigator.clipboard.readText()) === link", link),
                     "the invite link on the clipboard")
    await expect(by_id(alice, "invite").first).to_contain_text("used 0 of 5")
    carol, c = await open_page(url=link), unique("carol")
    await register(carol, c)
    await expect(by_id(carol, "join-group-name")).to_have_text("Boulder crew", timeout=10_000)
    await expect(by_id(carol, "join-group-facts")).to_contain_text("2 members")
    await by_id(carol, "join-button").click()
    await expect(carol.locator("#chat-title")).to_have_text("Boulder crew", timeout=10_000)
    await expect(member(alice, c)).to_have_count(1, timeout=10_000)

    # Muting her: her composer is closed, with the time it opens again.
    await member(alice, c).get_by_test_id("member-actions").click()
    await member(alice, c).get_by_test_id("member-mute-1h").click()
    await expect(member(alice, c)).to_have_attribute("data-muted", "true", timeout=10_000)
    await expect(by_id(carol, "composer-notice")).to_contain_text("You are muted until", timeout=10_000)
    await expect(by_id(carol, "composer-input")).to_be_disabled()
    await alice.set_viewport_size({"width": 1280, "height": 900})
    await by_id(alice, "group-info-panel").evaluate("panel => { panel.scrollTop = 0; }")
    await by_id(alice, "toast").evaluate("toast => { toast.hidden = true; }")
    await shoot(alice, "group-admin")

    # Removing Bob: his chat says so, he can write no more, the group leaves his list.
    await member(alice, b).get_by_test_id("member-actions").click()
    await member(alice, b).get_by_test_id("member-remove").click()
    await by_id(alice, "confirm-ok").click()
    await expect(member(alice, b)).to_have_count(0, timeout=10_000)
    await expect(by_id(bob, "composer-notice")).to_have_text("You were removed from this group.", timeout=10_000)
    await expect(by_id(bob, "composer-input")).to_be_disabled()
    await expect(bob.locator("#chat-subtitle")).to_have_text("You were removed")
    await expect(by_id(bob, "conversation").filter(has_text="Boulder crew")).to_have_count(0)
    await expect(by_id(bob, "group-info-panel")).to_be_hidden()


async def test_approval_requests_only_admins_send_and_dissolving(open_page):
    alice, a = await open_page(), unique("alice")
    await register(alice, a)
    await by_id(alice, "new-group").click()
    await by_id(alice, "group-name").fill("Quiet room")
    await by_id(alice, "create-group").click()
    await expect(by_id(alice, "group-info-panel")).to_be_visible(timeout=10_000)
    await by_id(alice, "group-approval-required").check()
    await expect(by_id(alice, "group-info-flags")).to_have_text("Joining needs approval", timeout=10_000)
    await by_id(alice, "group-everyone-muted").check()
    await expect(by_id(alice, "group-info-flags")).to_have_text("Only admins can send · Joining needs approval", timeout=10_000)
    await by_id(alice, "invite-create").click()
    await expect(by_id(alice, "invite-url")).to_have_value(re.compile(r"#join=[A-Za-z0-9_-]+$"), timeout=10_000)
    link = await by_id(alice, "invite-url").input_value()

    # Asking to join: the owner gets a badge and the request; declining tells the asker.
    bob, b = await open_page(url=link), unique("bob")
    await register(bob, b)
    await expect(by_id(bob, "join-group-facts")).to_contain_text("an admin approves", timeout=10_000)
    await expect(by_id(bob, "join-button")).to_have_text("Ask to join")
    await by_id(bob, "join-button").click()
    await expect(by_id(bob, "join-status")).to_contain_text("Request sent", timeout=10_000)
    await expect(by_id(alice, "group-info-badge")).to_have_text("1", timeout=10_000)
    listed = by_id(alice, "conversation").filter(has_text="Quiet room")
    await expect(listed.get_by_test_id("join-requests-badge")).to_have_text("+1")
    request = by_id(alice, "join-request").filter(has_text=b)
    await request.get_by_test_id("join-request-decline").click()
    await expect(by_id(alice, "join-request")).to_have_count(0, timeout=10_000)
    await expect(by_id(alice, "group-info-badge")).to_be_hidden()
    await expect(by_id(bob, "toast")).to_contain_text("declined", timeout=10_000)

    # Asking again with the pasted link; accepted (his dialog closes), he is in but only admins may write.
    await by_id(bob, "join-cancel").click()
    await by_id(bob, "join-group").click()
    await by_id(bob, "join-code-input").fill(link)
    await by_id(bob, "join-lookup").click()
    await by_id(bob, "join-button").click()
    await expect(by_id(bob, "join-status")).to_contain_text("Request sent", timeout=10_000)
    await by_id(alice, "join-request").filter(has_text=b).get_by_test_id("join-request-accept").click()
    await expect(by_id(alice, "group-member").filter(has_text=f"@{b}")).to_have_count(1, timeout=10_000)
    await expect(by_id(bob, "join-dialog")).to_be_hidden(timeout=10_000)
    await expect(by_id(bob, "toast")).to_contain_text("You joined “Quiet room”")
    group = by_id(bob, "conversation").filter(has_text="Quiet room")
    await expect(group).to_have_count(1, timeout=10_000)
    await group.click()
    await expect(by_id(bob, "composer-notice")).to_have_text("Only admins can send messages in this group.")
    await expect(by_id(bob, "composer-input")).to_be_disabled()
    for tool in ("emoji-button", "sticker-button", "voice-button"):
        await expect(by_id(bob, tool)).to_be_disabled()

    # Dissolving: confirmed by the owner; the member's open chat says so.
    await by_id(alice, "dissolve-group").click()
    await by_id(alice, "confirm-ok").click()
    await expect(by_id(alice, "conversation").filter(has_text="Quiet room")).to_have_count(0, timeout=10_000)
    await expect(by_id(bob, "composer-notice")).to_have_text("This group was dissolved.", timeout=10_000)
    await expect(bob.locator("#chat-subtitle")).to_have_text("Group dissolved")
    await expect(by_id(bob, "conversation").filter(has_text="Quiet room")).to_have_count(0)
