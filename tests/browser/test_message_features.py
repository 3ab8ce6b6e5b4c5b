"""Issue 15 in the web client, in Chromium: reply, react, edit, delete for me, receipts, mentions
in a group, and burn after reading from sending to destruction, as two people see them.

Message actions sit in a toolbar shown over the message under the mouse (hover); each test uses
fresh profiles and users on the session's stack.
"""
import json
import re

from playwright.async_api import Page, WebSocket, expect

from tests.browser.test_web_client import by_id, log_in, open_chat_with, send, two_friends
from tests.support.waiting import eventually


def message(page: Page, text: str):
    """The message whose own text (not a quote of it in a reply) contains `text`."""
    return by_id(page, "message").filter(has=page.get_by_test_id("message-text").filter(has_text=text))


async def act(page: Page, text: str, action: str) -> None:
    """Hover the message saying `text` and pick `action` (reply, react, edit, hide, recall)."""
    bubble = message(page, text)
    await bubble.hover()
    await bubble.get_by_test_id(f"action-{action}").click()


async def react(page: Page, text: str, emoji: str) -> None:
    await act(page, text, "react")
    await message(page, text).get_by_test_id("emoji-option").and_(page.locator(f'[data-emoji="{emoji}"]')).click()


def chip(page: Page, text: str, emoji: str):
    return message(page, text).locator(f'[data-testid="reaction"][data-emoji="{emoji}"]')


async def test_reply_react_edit_and_delete_for_me(open_page, shoot):
    alice, bob, a, b = await two_friends(open_page)
    await open_chat_with(alice, b)
    await send(alice, "what time is dinner?")
    await open_chat_with(bob, a)
    await expect(message(bob, "what time is dinner?")).to_have_count(1, timeout=10_000)

    # Reply: the composer shows the quote, the sent message draws it on both screens.
    await act(bob, "what time is dinner?", "reply")
    await expect(by_id(bob, "reply-bar")).to_contain_text("what time is dinner?")
    await send(bob, "at eight")
    await expect(by_id(bob, "reply-bar")).to_be_hidden()
    for page in (alice, bob):
        quote = message(page, "at eight").get_by_test_id("reply-quote")
        await expect(quote).to_contain_text("what time is dinner?", timeout=10_000)
    await message(alice, "at eight").get_by_test_id("reply-quote").click()
    await expect(message(alice, "what time is dinner?")).to_have_class(re.compile(r"\bflash\b"))

    # A reply cancelled in the composer carries no quote.
    await act(bob, "what time is dinner?", "reply")
    await by_id(bob, "reply-cancel").click()
    await expect(by_id(bob, "reply-bar")).to_be_hidden()

    # Reactions: chips with counts, mine pressed; a click on a chip toggles mine.
    await react(bob, "what time is dinner?", "👍")
    await expect(chip(alice, "what time is dinner?", "👍")).to_contain_text("1", timeout=10_000)
    await expect(chip(alice, "what time is dinner?", "👍")).to_have_attribute("aria-pressed", "false")
    await expect(chip(bob, "what time is dinner?", "👍")).to_have_attribute("aria-pressed", "true")
    await chip(alice, "what time is dinner?", "👍").click()
    await expect(chip(bob, "what time is dinner?", "👍")).to_contain_text("2", timeout=10_000)
    await expect(chip(alice, "what time is dinner?", "👍")).to_have_attribute("aria-pressed", "true")
    await react(alice, "at eight", "🎉")
    await expect(chip(bob, "at eight", "🎉")).to_contain_text("1", timeout=10_000)
    await chip(alice, "what time is dinner?", "👍").click()
    await expect(chip(bob, "what time is dinner?", "👍")).to_contain_text("1", timeout=10_000)
    await chip(alice, "what time is dinner?", "👍").click()
    await expect(chip(bob, "what time is dinner?", "👍")).to_contain_text("2", timeout=10_000)

    # Edit my own message in place: both screens show the new text, marked "edited".
    await act(alice, "what time is dinner?", "edit")
    editor = by_id(alice, "edit-input")
    await editor.fill("what time is dinner tonight?")
    await editor.press("Enter")
    for page in (alice, bob):
        edited = message(page, "what time is dinner tonight?")
        await expect(edited).to_have_count(1, timeout=10_000)
        await expect(edited.get_by_test_id("edited")).to_be_visible()
    # Someone else's message offers no edit.
    await message(bob, "what time is dinner tonight?").hover()
    await expect(message(bob, "what time is dinner tonight?").get_by_test_id("action-edit")).to_be_hidden()
    await message(alice, "at eight").hover()  # the actions beside Bob's reply
    await shoot(alice, "message-actions")
    await alice.mouse.move(5, 5)

    # Delete for me: gone from Bob's screen (and after his reload), still on Alice's.
    await act(bob, "at eight", "hide")
    await expect(message(bob, "at eight")).to_have_count(0, timeout=10_000)
    await bob.reload()
    await open_chat_with(bob, a)
    await expect(message(bob, "what time is dinner tonight?")).to_have_count(1, timeout=10_000)
    await expect(message(bob, "at eight")).to_have_count(0)
    await expect(message(alice, "at eight")).to_have_count(1)


async def test_receipts_go_from_sent_to_delivered_to_read(open_page):
    alice, bob, a, b = await two_friends(open_page)
    await open_chat_with(alice, b)
    profile = bob.context
    await bob.close()  # offline: nothing is delivered
    await send(alice, "are you there?")
    mine = message(alice, "are you there?")
    await expect(mine).to_have_attribute("data-state", "sent", timeout=10_000)
    bob = await open_page(context=profile)  # back, but not looking at the chat: delivered, not read
    await expect(mine).to_have_attribute("data-state", "delivered", timeout=15_000)
    await expect(mine.get_by_test_id("receipt")).to_contain_text("Delivered")
    await open_chat_with(bob, a)
    await expect(mine).to_have_attribute("data-state", "read", timeout=10_000)

    # It lasts: after a reload the page learns it from history.fetch and conversations.list.
    await alice.reload()
    await open_chat_with(alice, b)
    await expect(mine).to_have_attribute("data-state", "read", timeout=10_000)
    await expect(mine.get_by_test_id("receipt")).to_contain_text("Read")


async def test_a_mention_in_a_group_is_completed_highlighted_and_badged(open_page):
    alice, bob, a, b = await two_friends(open_page)
    await by_id(alice, "new-group").click()
    await by_id(alice, "group-name").fill("Dinner plans")
    await by_id(alice, "group-member-option").filter(has_text=b).click()
    await by_id(alice, "create-group").click()
    await expect(by_id(alice, "composer-input")).to_be_visible(timeout=10_000)

    composer = by_id(alice, "composer-input")
    await composer.press_sequentially(f"see you there @{b[:4]}", delay=20)
    option = by_id(alice, "mention-option").filter(has_text=b)
    await expect(option).to_have_count(1, timeout=10_000)
    await composer.press("Enter")  # picks the member, does not send
    await expect(composer).to_have_value(f"see you there @{b} ")
    await composer.press("Enter")
    await expect(message(alice, "see you there")).to_have_count(1, timeout=10_000)
    await expect(message(alice, "see you there").get_by_test_id("mention")).to_have_text(f"@{b}")

    group = by_id(bob, "conversation").filter(has_text="Dinner plans")
    await expect(group.get_by_test_id("mention-badge")).to_have_text("@", timeout=10_000)
    await group.click()
    mention = message(bob, "see you there")
    await expect(mention).to_have_attribute("data-mentions-me", "true", timeout=10_000)
    await expect(mention.get_by_test_id("mention")).to_have_class(re.compile(r"\bme\b"))
    await expect(group.get_by_test_id("mention-badge")).to_have_count(0)
    await expect(message(alice, "see you there").get_by_test_id("receipt")).to_contain_text("Read by 1 of 1", timeout=10_000)


async def test_burn_after_reading_from_sending_to_destruction(open_page, shoot):
    alice, bob, a, b = await two_friends(open_page)
    await open_chat_with(alice, b)
    await open_chat_with(bob, a)
    await by_id(alice, "burn-toggle").click()
    await by_id(alice, "burn-select").select_option("5")
    await send(alice, "the door code is 4711")

    sent = message(alice, "the door code is 4711")
    await expect(sent).to_have_attribute("data-burn", "waiting", timeout=10_000)
    await expect(sent.get_by_test_id("burn-status")).to_contain_text("Burn after reading")
    sealed = by_id(bob, "message").and_(bob.locator('[data-burn="sealed"]'))
    await expect(sealed).to_have_count(1, timeout=10_000)
    await expect(sealed.get_by_test_id("message-text")).to_have_count(0)  # nothing to read before opening
    await expect(bob.get_by_text("4711")).to_have_count(0)

    await sealed.get_by_test_id("burn-open").click()
    opened = message(bob, "the door code is 4711")
    await expect(opened).to_have_attribute("data-burn", "open", timeout=10_000)
    await expect(opened.get_by_test_id("burn-status")).to_contain_text(re.compile(r"Burns in \d+ s"))
    await expect(sent).to_have_attribute("data-burn", "opened", timeout=10_000)
    await expect(sent.get_by_test_id("burn-status")).to_contain_text("Opened")
    await bob.mouse.move(5, 5)
    await shoot(bob, "burn")

    # Five seconds after opening it is destroyed: gone for Bob, an empty "burned" bubble for Alice.
    await expect(by_id(bob, "message")).to_have_count(0, timeout=15_000)
    burned = by_id(alice, "message").and_(alice.locator('[data-burn="burned"]'))
    await expect(burned).to_have_count(1, timeout=15_000)
    await expect(burned.get_by_test_id("burn-status")).to_have_text("Burned")
    await expect(alice.get_by_text("4711")).to_have_count(0)
    await bob.reload()  # and it does not come back
    await open_chat_with(bob, a)
    await expect(bob.get_by_text("No messages yet")).to_be_visible()  # the history has come, empty
    await expect(by_id(bob, "message")).to_have_count(0)


async def test_a_page_cut_off_for_a_while_catches_up_on_edits_reactions_and_recalls(open_page):
    """The page keeps the messages it holds; the sync after reconnecting tells what changed."""
    alice, bob, a, b = await two_friends(open_page)
    await open_chat_with(alice, b)
    for text in ("first draft", "to be recalled", "plain words"):
        await send(alice, text)
    down = False
    sockets = []

    async def gate(route):  # while `down`, every new socket is refused at once
        if down:
            await route.close(code=1012, reason="restart")
            return
        route.connect_to_server()
        sockets.append(route)

    acks: dict[str, int] = {}  # request id -> seq, of Bob's page's message.ack requests
    acked: list[int] = []  # seqs the server has acknowledged

    def watch(ws: WebSocket) -> None:
        ws.on("framesent", lambda frame: remember_ack(acks, frame))
        ws.on("framereceived", lambda frame: confirm_ack(acks, acked, frame))

    bob.on("websocket", watch)
    await bob.route_web_socket(re.compile(r".*/ws$"), gate)
    await bob.reload()
    await expect(by_id(bob, "connection-status")).to_contain_text("Connected", timeout=15_000)
    await open_chat_with(bob, a)
    await expect(message(bob, "plain words")).to_have_count(1, timeout=10_000)
    await expect(message(alice, "plain words")).to_have_attribute("data-state", "read", timeout=10_000)
    # Bob's device has acknowledged all three (the page sends it 0.4 s after arrival): what the
    # sync brings back is then what changed, not the messages again.
    last = int(await message(bob, "plain words").get_attribute("data-seq") or 0)
    await eventually(lambda: max(acked, default=0) >= last > 0, f"Bob's page acknowledged seq {last}")

    down = True
    await sockets[-1].close(code=1012, reason="restart")
    await expect(by_id(bob, "connection-status")).to_contain_text("Reconnecting", timeout=10_000)
    await act(alice, "first draft", "edit")
    await by_id(alice, "edit-input").fill("final draft")
    await by_id(alice, "edit-input").press("Enter")
    await expect(message(alice, "final draft")).to_have_count(1, timeout=10_000)
    await react(alice, "plain words", "❤️")
    await act(alice, "to be recalled", "recall")
    await expect(message(alice, "message recalled")).to_have_count(1, timeout=10_000)
    await expect(chip(alice, "plain words", "❤️")).to_have_count(1)

    down = False
    await expect(by_id(bob, "connection-status")).to_contain_text("Connected", timeout=20_000)
    await expect(message(bob, "final draft")).to_have_count(1, timeout=10_000)
    await expect(message(bob, "final draft").get_by_test_id("edited")).to_be_visible()
    await expect(chip(bob, "plain words", "❤️")).to_contain_text("1", timeout=10_000)
    await expect(message(bob, "to be recalled")).to_have_count(0, timeout=10_000)
    await expect(message(bob, "message recalled")).to_have_count(1)
    assert len(sockets) >= 2


def remember_ack(acks: dict[str, int], frame: str | bytes) -> None:
    request = json.loads(frame)
    if request.get("type") == "message.ack":
        acks[request["id"]] = request["data"]["seq"]


def confirm_ack(acks: dict[str, int], acked: list[int], frame: str | bytes) -> None:
    reply = json.loads(frame)
    if reply.get("type") == "reply" and reply.get("ok") and reply.get("id") in acks:
        acked.append(acks.pop(reply["id"]))


async def test_a_long_press_on_a_phone_shows_the_actions(open_page):
    from tests.browser.conftest import PHONE

    alice, bob, a, b = await two_friends(open_page)
    await open_chat_with(alice, b)
    await send(alice, "press me")
    phone = await open_page(viewport=PHONE)  # Bob's phone
    await log_in(phone, b)
    await open_chat_with(phone, a)
    bubble = message(phone, "press me")
    await expect(bubble).to_have_count(1, timeout=10_000)

    cdp = await phone.context.new_cdp_session(phone)
    await cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
    box = await bubble.locator(".bubble").bounding_box()
    point = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
    # Held until the actions show (the page's long press: 450 ms), then released: they stay.
    await expect(bubble.get_by_test_id("action-react")).to_be_visible()
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    await expect(bubble.get_by_test_id("action-react")).to_be_visible()
    await bubble.get_by_test_id("action-react").click()
    await bubble.locator('[data-testid="emoji-option"][data-emoji="😂"]').click()
    await expect(chip(alice, "press me", "😂")).to_contain_text("1", timeout=10_000)
