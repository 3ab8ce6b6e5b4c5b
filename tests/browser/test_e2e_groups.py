"""Issue 28 step two in the web client, in Chromium: end-to-end encrypted groups with Megolm
(libolm as WebAssembly; docs/security.md "Encrypted groups (step two: Megolm)").

Three people in a group; the owner turns encryption on (a plain member is not offered it); text
with a mention, an image and a voice message are read by all three; the gateway's MongoDB holds
none of the plaintext; someone added later sees what came before as unreadable, never as text,
and reads what comes after; a Megolm ciphertext changed on the way shows as undecryptable.
"""
import json
import re
from typing import Any

from playwright.async_api import Page, WebSocketRoute, expect
from pymongo import AsyncMongoClient

from tests.browser.test_e2e import encrypted_message
from tests.browser.test_media_messages import message_with
from tests.browser.test_web_client import befriend, by_id, contact, message, open_chat_with, png, register, send, two_friends, unique
from tests.support.stored import plaintext_found

GROUP = "Night owls"


def unreadable(page: Page):
    """Messages drawn without their content: waiting for a key, sent before, or undecryptable."""
    return by_id(page, "message").and_(page.locator('[data-e2e]:not([data-e2e="ok"])'))


async def open_group(page: Page, name: str = GROUP) -> None:
    group = by_id(page, "conversation").filter(has_text=name)
    await expect(group).to_have_count(1, timeout=15_000)
    await group.click()
    await expect(by_id(page, "composer-input")).to_be_visible()


async def encrypted_group(open_page) -> tuple[list[Page], list[str]]:
    """Alice (the owner), Bob and Carol in GROUP, turned encrypted by Alice."""
    alice, bob, a, b = await two_friends(open_page)
    carol, c = await open_page(), unique("carol")
    await register(carol, c)
    await befriend(alice, carol, c)
    await expect(contact(alice, c)).to_have_count(1, timeout=10_000)
    await by_id(alice, "new-group").click()
    await by_id(alice, "group-name").fill(GROUP)
    await by_id(alice, "group-member-option").filter(has_text=b).click()
    await by_id(alice, "group-member-option").filter(has_text=c).click()
    await by_id(alice, "create-group").click()
    await expect(by_id(alice, "composer-input")).to_be_visible(timeout=10_000)
    pages = [alice, bob, carol]
    for page in pages:
        await expect(page.locator("body")).to_have_attribute("data-e2e", "ready", timeout=20_000)
    for page in (bob, carol):
        await open_group(page)
        await expect(by_id(page, "e2e-turn-on")).to_be_hidden()  # a plain member cannot turn it on
    turn_on = by_id(alice, "e2e-turn-on")
    await expect(turn_on).to_be_visible()
    await turn_on.click()
    for page in pages:
        await expect(by_id(page, "e2e-badge")).to_be_visible(timeout=15_000)
        await expect(by_id(page, "e2e-turn-on")).to_be_hidden()
    return pages, [a, b, c]


async def test_three_members_read_encrypted_text_an_image_and_a_voice_message(open_page, settings, tmp_path, shoot):
    (alice, bob, carol), (a, b, c) = await encrypted_group(open_page)

    # Text from each of them, read by the other two (each a room key of its own first).
    texts = {}
    for sender in (alice, bob, carol):
        texts[sender] = f"the owl flies at midnight {unique('m')}"
        await send(sender, texts[sender])
    for page in (alice, bob, carol):
        for text in texts.values():
            shown = encrypted_message(page, text)
            await expect(shown).to_have_count(1, timeout=30_000)
        await expect(encrypted_message(page, texts[alice]).get_by_test_id("e2e-lock")).to_be_visible()

    # No reactions in an encrypted group.
    received = encrypted_message(bob, texts[alice])
    await received.hover()
    await expect(bob.get_by_test_id("action-reply")).to_be_visible()
    await expect(bob.get_by_test_id("action-react")).to_be_hidden()
    await bob.mouse.move(5, 5)

    # A mention travels inside the ciphertext; Carol's page marks it from what it decrypted
    # (the server cannot count it): the group's "@" badge while she is elsewhere, then the bubble.
    await open_chat_with(carol, a)
    composer = by_id(alice, "composer-input")
    await composer.press_sequentially(f"ping @{c[:5]}", delay=20)
    await expect(by_id(alice, "mention-option").filter(has_text=c)).to_have_count(1, timeout=10_000)
    await composer.press("Enter")
    await composer.press("Enter")
    group = by_id(carol, "conversation").filter(has_text=GROUP)
    await expect(group.get_by_test_id("mention-badge")).to_have_text("@", timeout=20_000)
    await group.click()
    mention = encrypted_message(carol, "ping")
    await expect(mention).to_have_count(1, timeout=20_000)
    await expect(mention).to_have_attribute("data-mentions-me", "true", timeout=10_000)
    await expect(mention.get_by_test_id("mention")).to_have_text(f"@{c}")

    # An image (AES-256-GCM before upload) and a voice message, opened by the other two.
    image = tmp_path / "owl-nest-map.png"
    image.write_bytes(png(64, 48))
    await by_id(alice, "file-input").set_input_files(str(image))
    for page in (bob, carol):
        shown = by_id(page, "message-image")
        await expect(shown).to_have_attribute("data-source", "full", timeout=30_000)
        await page.wait_for_function(
            "() => { const img = document.querySelector('[data-testid=message-image]');"
            " return img && img.complete && img.naturalWidth === 64 && img.src.startsWith('blob:'); }",
            timeout=15_000)
        await expect(shown).to_have_attribute("alt", "owl-nest-map.png")
    await by_id(bob, "voice-button").click()
    await expect(by_id(bob, "voice-recorder")).to_be_visible(timeout=10_000)
    await expect(by_id(bob, "voice-timer")).to_have_text("0:02", timeout=5_000)
    await by_id(bob, "voice-send").click()
    for page in (alice, carol):
        voice = message_with(page, "voice-player")
        await expect(voice).to_have_count(1, timeout=30_000)
        await expect(voice).to_have_attribute("data-e2e", "ok")
        await voice.get_by_test_id("voice-play").click()
        await page.wait_for_function(
            "() => { const a = document.querySelector('[data-testid=voice-audio]');"
            " return a && a.src.startsWith('blob:') && a.currentTime > 0.3; }", timeout=15_000)
    await shoot(carol, "e2e-group")

    # The database holds none of it: no text, no file name; the messages are Megolm envelopes.
    found = await plaintext_found(settings, [*texts.values(), "ping @", "owl-nest-map"])
    assert found == [], found
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
    try:
        db = mongo[settings.mongo_db]
        stored = await db["messages"].find_one({"encrypted.algorithm": "megolm.v1"})
        assert stored is not None, "the group's messages are stored as Megolm ciphertext"
    finally:
        await mongo.close()

    # After a reload the messages are read again (the inbound sessions are kept, pickled).
    await carol.reload()
    await expect(by_id(carol, "connection-status")).to_contain_text("Connected", timeout=15_000)
    await open_group(carol)
    await expect(encrypted_message(carol, texts[bob])).to_have_count(1, timeout=15_000)


async def test_a_member_added_later_cannot_read_what_came_before(open_page, settings):
    (alice, bob, carol), (a, b, c) = await encrypted_group(open_page)
    before = f"before dave came {unique('b')}"
    await send(alice, before)
    await expect(encrypted_message(bob, before)).to_have_count(1, timeout=30_000)
    conversation_id = await alice.evaluate("async () => (await import('/app/js/store.js')).openConv().id")
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
    try:
        stored = await mongo[settings.mongo_db]["messages"].find_one(
            {"conversation_id": conversation_id, "encrypted.algorithm": "megolm.v1"}, sort=[("seq", -1)])
    finally:
        await mongo.close()
    assert stored is not None
    old_envelope = stored["encrypted"]

    # Dave's socket, once armed, gets a new message with the earlier one's envelope in its place:
    # what he would hold had the server handed him the earlier history.
    armed = {"on": False}

    def swap(text: str | bytes) -> str | bytes:
        if isinstance(text, bytes) or not armed["on"]:
            return text
        frame = json.loads(text)
        envelope = (frame.get("data") or {}).get("encrypted") if frame.get("type") == "message.new" else None
        if not envelope or envelope.get("algorithm") != "megolm.v1":
            return text
        frame["data"]["encrypted"] = old_envelope
        armed["on"] = False
        return json.dumps(frame)

    async def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        ws.on_message(lambda text: server.send(text))
        server.on_message(lambda text: ws.send(swap(text)))

    dave, d = await open_page(), unique("dave")
    await dave.context.route_web_socket(re.compile(r"/ws$"), route)
    await dave.reload()
    await register(dave, d)
    await befriend(alice, dave, d)
    await expect(contact(alice, d)).to_have_count(1, timeout=10_000)
    await open_group(alice)
    await expect(dave.locator("body")).to_have_attribute("data-e2e", "ready", timeout=20_000)
    if not await by_id(alice, "group-info-panel").is_visible():
        await by_id(alice, "group-info-toggle").click()
    await by_id(alice, "add-member-select").select_option(label=d)
    await by_id(alice, "add-member").click()
    await open_group(dave)
    await expect(by_id(dave, "e2e-badge")).to_be_visible(timeout=15_000)
    await expect(message(dave, before)).to_have_count(0)

    # The earlier ciphertext, in Dave's hands: no key opens it, it is never shown as text.
    armed["on"] = True
    decoy = f"decoy {unique('d')}"
    await send(alice, decoy)
    await expect(encrypted_message(bob, decoy)).to_have_count(1, timeout=30_000)
    waiting = unreadable(dave)
    await expect(waiting).to_have_count(1, timeout=20_000)
    await expect(waiting).to_have_attribute("data-e2e", "waiting")
    await expect(waiting).to_contain_text("Waiting for the key")
    await expect(message(dave, before)).to_have_count(0)
    opened = await dave.evaluate("""async ([envelope, conversationId, from]) => {
        const e2e = await import('/app/js/e2e.js');
        try {
            await e2e.open({encrypted: envelope, conversation_id: conversationId, from_user_id: from, message_id: 'probe'});
            return 'opened';
        } catch (error) { return error.code; }
    }""", [old_envelope, conversation_id, stored["from_user_id"]])
    assert opened == "waiting_key"

    # What comes after is his to read (the session rotated when he joined).
    after = f"welcome dave {unique('a')}"
    await send(alice, after)
    await expect(encrypted_message(dave, after)).to_have_count(1, timeout=30_000)
    await expect(encrypted_message(bob, after)).to_have_count(1, timeout=30_000)
    await expect(message(dave, before)).to_have_count(0)
    mongo = AsyncMongoClient(settings.mongo_url)
    try:
        latest = await mongo[settings.mongo_db]["messages"].find_one(
            {"conversation_id": conversation_id, "encrypted.algorithm": "megolm.v1"}, sort=[("seq", -1)])
    finally:
        await mongo.close()
    assert latest is not None and latest["encrypted"]["session_id"] != old_envelope["session_id"], "rotated on joining"


async def test_a_megolm_ciphertext_changed_or_replayed_on_the_way_is_shown_as_undecryptable(open_page):
    (alice, bob, carol), (a, b, c) = await encrypted_group(open_page)
    await send(alice, "first, as sent")
    await expect(encrypted_message(carol, "first, as sent")).to_have_count(1, timeout=30_000)

    # Carol's socket, once armed, gets each Megolm envelope with its ciphertext altered
    # ("tamper"), or an earlier message's envelope under a new message ("replay").
    armed = {"on": "", "first": None}

    def tamper(text: str | bytes) -> str | bytes:
        if isinstance(text, bytes):
            return text
        frame = json.loads(text)
        envelope = (frame.get("data") or {}).get("encrypted") if frame.get("type") == "message.new" else None
        if not envelope or envelope.get("algorithm") != "megolm.v1":
            return text
        if not armed["on"]:
            armed["first"] = armed["first"] or dict(envelope)
            return text
        if armed["on"] == "replay":
            frame["data"]["encrypted"] = armed["first"]
            return json.dumps(frame)
        body = envelope["ciphertext"]
        middle = len(body) // 2  # inside the ciphertext: its MAC and signature fail
        envelope["ciphertext"] = body[:middle] + ("A" if body[middle] != "A" else "B") + body[middle + 1:]
        return json.dumps(frame)

    async def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        ws.on_message(lambda text: server.send(text))
        server.on_message(lambda text: ws.send(tamper(text)))

    await carol.context.route_web_socket(re.compile(r"/ws$"), route)
    await carol.reload()
    await expect(by_id(carol, "connection-status")).to_contain_text("Connected", timeout=15_000)
    await open_group(carol)
    await expect(encrypted_message(carol, "first, as sent")).to_have_count(1, timeout=15_000)
    await send(alice, "second, as sent")  # its envelope is the one replayed below
    await expect(encrypted_message(carol, "second, as sent")).to_have_count(1, timeout=15_000)
    assert armed["first"] is not None
    armed["on"] = "tamper"
    await send(alice, "this must never show")
    failed = by_id(carol, "message").and_(carol.locator('[data-e2e="failed"]'))
    await expect(failed).to_have_count(1, timeout=20_000)
    await expect(failed).to_contain_text("could not be decrypted")
    await expect(message(carol, "this must never show")).to_have_count(0)
    await expect(encrypted_message(bob, "this must never show")).to_have_count(1, timeout=20_000)  # untouched there

    # A replay: the same Megolm index under another message is refused, not shown twice.
    armed["on"] = "replay"
    await send(alice, "nor this one")
    await expect(failed).to_have_count(2, timeout=20_000)
    await expect(message(carol, "second, as sent")).to_have_count(1)
    await expect(message(carol, "nor this one")).to_have_count(0)


async def test_a_message_whose_key_comes_later_waits_for_it_then_opens(open_page, settings):
    (alice, bob, carol), (a, b, c) = await encrypted_group(open_page)

    # Carol's socket holds back the to-device messages (the room keys) until released.
    held: dict[str, Any] = {"on": True, "frames": [], "ws": None}

    def hold(text: str | bytes) -> bool:
        if isinstance(text, bytes) or not held["on"]:
            return False
        if json.loads(text).get("type") == "device.message":
            held["frames"].append(text)
            return True
        return False

    async def route(ws: WebSocketRoute) -> None:
        held["ws"] = ws
        server = ws.connect_to_server()
        ws.on_message(lambda text: server.send(text))
        server.on_message(lambda text: None if hold(text) else ws.send(text))

    await carol.context.route_web_socket(re.compile(r"/ws$"), route)
    await carol.reload()
    await expect(by_id(carol, "connection-status")).to_contain_text("Connected", timeout=15_000)
    await open_group(carol)
    late = f"the key comes later {unique('k')}"
    await send(alice, late)
    await expect(encrypted_message(bob, late)).to_have_count(1, timeout=30_000)
    waiting = by_id(carol, "message").and_(carol.locator('[data-e2e="waiting"]'))
    await expect(waiting).to_have_count(1, timeout=20_000)
    await expect(waiting).to_contain_text("Waiting for the key")
    await expect(message(carol, late)).to_have_count(0)
    assert held["frames"], "the room key was held back"

    held["on"] = False
    for frame in held["frames"]:
        held["ws"].send(frame)
    await expect(encrypted_message(carol, late)).to_have_count(1, timeout=20_000)
    await expect(waiting).to_have_count(0)

    # An edit goes as a new Megolm envelope under the same message.
    await alice.mouse.move(5, 5)
    mine = encrypted_message(alice, late)
    await mine.hover()
    await mine.get_by_test_id("action-edit").click()
    edited = f"{late} (edited)"
    await by_id(alice, "edit-input").fill(edited)
    await by_id(alice, "edit-input").press("Enter")
    for page in (bob, carol):
        shown = encrypted_message(page, edited)
        await expect(shown).to_have_count(1, timeout=20_000)
        await expect(shown.get_by_test_id("edited")).to_be_visible()

    # Bob leaves: Alice's next message goes with a new session, which Bob's devices never get.
    async def newest_session() -> str:
        conversation_id = await alice.evaluate("async () => (await import('/app/js/store.js')).openConv().id")
        mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
        try:
            newest = await mongo[settings.mongo_db]["messages"].find_one(
                {"conversation_id": conversation_id, "encrypted.algorithm": "megolm.v1", "from_user_id": {"$exists": True}},
                sort=[("seq", -1)])
        finally:
            await mongo.close()
        assert newest is not None
        return str(newest["encrypted"]["session_id"])

    before_leaving = await newest_session()
    if not await by_id(bob, "group-info-panel").is_visible():
        await by_id(bob, "group-info-toggle").click()
    await by_id(bob, "leave-group").click()
    await expect(by_id(alice, "group-members")).not_to_contain_text(b, timeout=10_000)
    after_leaving = f"bob has gone {unique('g')}"
    await send(alice, after_leaving)
    await expect(encrypted_message(carol, after_leaving)).to_have_count(1, timeout=20_000)
    assert await newest_session() != before_leaving, "rotated when a member left"
