"""Issue 28 in the web client, in Chromium: end-to-end encrypted direct conversations with Olm
(libolm as WebAssembly, docs/security.md).

Two people turn encryption on and exchange encrypted text, an image and a voice message; the
gateway's MongoDB holds none of the plaintext; the safety number is the same on both pages and
is the one docs/security.md's algorithm gives (checked against its test vector too); a ciphertext
changed on the way is shown as undecryptable, never as text; and a page without the olm files
still works, saying why encryption is unavailable.
"""
import json
import re
from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, WebSocketRoute, expect
from pymongo import AsyncMongoClient

from parley_client.e2e.primitives import safety_number

from tests.browser.test_media_messages import message_with
from tests.browser.test_web_client import befriend, by_id, log_in, message, open_chat_with, png, register, send, two_friends, unique
from tests.support.stored import plaintext_found

async def turn_on_encryption(alice: Page, bob: Page, a: str, b: str) -> None:
    """Both in the chat; Alice turns encryption on; both see the lock."""
    for page in (alice, bob):  # each device's keys published
        await expect(page.locator("body")).to_have_attribute("data-e2e", "ready", timeout=15_000)
    await open_chat_with(alice, b)
    await open_chat_with(bob, a)
    turn_on = by_id(alice, "e2e-turn-on")
    await expect(turn_on).to_be_visible()
    await turn_on.click()
    for page in (alice, bob):
        await expect(by_id(page, "e2e-badge")).to_be_visible(timeout=15_000)
        await expect(by_id(page, "e2e-turn-on")).to_be_hidden()


def encrypted_message(page: Page, text: str):
    return message(page, text).and_(page.locator('[data-e2e="ok"]'))


async def test_the_safety_number_is_docs_security_md_vector(open_page):
    page = await open_page()
    result = await page.evaluate("""async () => {
        const m = await import('/app/js/safety.js');
        const alice = ['CuLI4SEazwzoahrYwlsr6jYj1chcpNJqGuTSjryp1bM', '8pLych8ZcgrVSRZwB0089SyzgCYbmdMl9t8JPYqTuPE'];
        return {
            alice: await m.fingerprint('alice-0001', alice),
            bob: await m.fingerprint('bob-0002', ['n4dxcWOVoS/7sUrLnZ/CEJ3r7Yxl1ONRsUNxWi3iP48']),
            number: m.groups(await m.safetyNumber('bob-0002', ['n4dxcWOVoS/7sUrLnZ/CEJ3r7Yxl1ONRsUNxWi3iP48'], 'alice-0001', alice)).join(' '),
            replaced: m.groups(await m.safetyNumber('alice-0001', alice, 'bob-0002', ['wOM75NUoc1O41VVnsH0Fmwb/UpOTZNCcUGu1NIVzU0Y'])).join(' '),
            qr: m.qrText('1'.repeat(60)),
        };
    }""")
    assert result["alice"] == "580893346675253931797051962228"
    assert result["bob"] == "856158708298875510847748114557"
    assert result["number"] == "58089 33466 75253 93179 70519 62228 85615 87082 98875 51084 77481 14557"
    assert result["replaced"] == "58089 33466 75253 93179 70519 62228 43306 77685 95975 06226 76903 49314"
    assert result["qr"] == "parley-sn:1:" + "1" * 60
    # The spec's algorithm as written in this file gives the same figures.
    assert safety_number("alice-0001", ["CuLI4SEazwzoahrYwlsr6jYj1chcpNJqGuTSjryp1bM", "8pLych8ZcgrVSRZwB0089SyzgCYbmdMl9t8JPYqTuPE"],
                         "bob-0002", ["n4dxcWOVoS/7sUrLnZ/CEJ3r7Yxl1ONRsUNxWi3iP48"]) == result["number"].replace(" ", "")


async def test_two_people_exchange_encrypted_text_an_image_and_a_voice_message(open_page, settings, tmp_path, shoot):
    alice, bob, a, b = await two_friends(open_page)
    await turn_on_encryption(alice, bob, a, b)

    # Text, both ways: readable on both pages, locked, with no reaction to offer.
    secret = f"the eagle lands at noon {unique('x')}"
    await send(alice, secret)
    received = encrypted_message(bob, secret)
    await expect(received).to_have_count(1, timeout=20_000)
    await expect(received.get_by_test_id("e2e-lock")).to_be_visible()
    answer = f"understood {unique('y')}"
    await send(bob, answer)
    await expect(encrypted_message(alice, answer)).to_have_count(1, timeout=20_000)
    await received.hover()
    await expect(bob.get_by_test_id("action-reply")).to_be_visible()  # the toolbar is up ...
    await expect(bob.get_by_test_id("action-react")).to_be_hidden()  # ... without reactions
    await expect(encrypted_message(alice, secret)).to_have_count(1)

    # An edit goes as a new envelope; a built-in sticker goes inside the ciphertext.
    await bob.mouse.move(5, 5)
    mine = encrypted_message(bob, answer)
    await mine.hover()
    await mine.get_by_test_id("action-edit").click()
    edited_text = f"{answer} (edited)"
    await by_id(bob, "edit-input").fill(edited_text)
    await by_id(bob, "edit-input").press("Enter")
    edited = encrypted_message(alice, edited_text)
    await expect(edited).to_have_count(1, timeout=20_000)
    await expect(edited.get_by_test_id("edited")).to_be_visible()
    await by_id(alice, "sticker-button").click()
    choice = by_id(alice, "sticker-choice").and_(alice.locator('[data-pack="builtin"]')).first
    await expect(choice).to_be_visible(timeout=10_000)
    sticker_id = await choice.get_attribute("data-sticker-id")
    await choice.click()
    sticker = message_with(bob, "message-sticker")
    await expect(sticker).to_have_count(1, timeout=20_000)
    await expect(sticker).to_have_attribute("data-e2e", "ok")
    await expect(sticker.get_by_test_id("message-sticker")).to_have_attribute("data-sticker-id", sticker_id or "")

    # An image: AES-256-GCM before upload, decrypted after download into a blob: URL.
    image = tmp_path / "holiday-secret-plan.png"
    image.write_bytes(png(64, 48))
    await by_id(alice, "file-input").set_input_files(str(image))
    shown = by_id(bob, "message-image")
    await expect(shown).to_have_attribute("data-source", "full", timeout=20_000)
    await bob.wait_for_function(
        "() => { const img = document.querySelector('[data-testid=message-image]');"
        " return img && img.complete && img.naturalWidth === 64 && img.naturalHeight === 48 && img.src.startsWith('blob:'); }",
        timeout=15_000)
    await expect(shown).to_have_attribute("alt", "holiday-secret-plan.png")

    # A voice message from the fake microphone, played by Bob.
    await by_id(alice, "voice-button").click()
    await expect(by_id(alice, "voice-recorder")).to_be_visible(timeout=10_000)
    await expect(by_id(alice, "voice-timer")).to_have_text("0:02", timeout=5_000)
    await by_id(alice, "voice-send").click()
    voice = message_with(bob, "voice-player")
    await expect(voice).to_have_count(1, timeout=20_000)
    await expect(voice).to_have_attribute("data-e2e", "ok")
    await voice.get_by_test_id("voice-play").click()
    await bob.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=voice-audio]');"
        " return a && a.src.startsWith('blob:') && a.currentTime > 0.3; }", timeout=15_000)
    await shoot(bob, "e2e-conversation")

    # The server's database holds none of it: no text, no file name.
    found = await plaintext_found(settings, [secret, answer, edited_text, "holiday-secret-plan"])
    assert found == [], found
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
    try:
        db = mongo[settings.mongo_db]
        stored = await db["messages"].find_one({"conversation_id": {"$exists": True}, "encrypted": {"$exists": True}})
        assert stored is not None, "the messages are stored encrypted"
    finally:
        await mongo.close()

    # After a reload the messages are read again from this browser's own store.
    await bob.reload()
    await expect(by_id(bob, "connection-status")).to_contain_text("Connected", timeout=15_000)
    await open_chat_with(bob, a)
    await expect(encrypted_message(bob, secret)).to_have_count(1, timeout=15_000)


async def test_the_safety_number_is_the_same_on_both_pages_and_can_be_verified(open_page, shoot):
    alice, bob, a, b = await two_friends(open_page)
    await turn_on_encryption(alice, bob, a, b)
    numbers = []
    for page in (alice, bob):
        await by_id(page, "e2e-badge").click()
        panel = by_id(page, "safety-panel")
        await expect(panel).to_be_visible()
        digits = by_id(page, "safety-number")
        await expect(digits).to_have_attribute("data-digits", re.compile(r"^\d{60}$"), timeout=15_000)
        number = await digits.get_attribute("data-digits") or ""
        await expect(digits.locator(".safety-group")).to_have_count(12)
        await expect(by_id(page, "safety-qr")).to_have_attribute("data-text", f"parley-sn:1:{number}")
        numbers.append(number)
    assert numbers[0] == numbers[1]

    # The figure is the spec's, from the keys the key directory gives for each user.
    keys = await alice.evaluate("""async () => {
        const e2e = await import('/app/js/e2e.js');
        const me = JSON.parse(localStorage.getItem('parley.user')).user_id;
        const peer = [...document.querySelectorAll('[data-testid=contact]')].map((el) => el.dataset.userId)[0];
        return {me, peer, mine: await e2e.signingKeys(me), theirs: await e2e.signingKeys(peer)};
    }""")
    assert safety_number(keys["me"], keys["mine"], keys["peer"], keys["theirs"]) == numbers[0]

    await by_id(alice, "e2e-mark-verified").click()
    await expect(by_id(alice, "safety-status")).to_have_attribute("data-verified", "true")
    await shoot(alice, "e2e-safety-number")
    await by_id(alice, "safety-close").click()
    await expect(by_id(alice, "e2e-badge")).to_have_attribute("data-verified", "true")
    await alice.reload()  # the mark is kept with the pinned keys
    await open_chat_with(alice, b)
    await expect(by_id(alice, "e2e-badge")).to_have_attribute("data-verified", "true", timeout=15_000)

    # Bob's browser loses its keys (site data cleared) and makes new ones for the same device:
    # Alice is told in the conversation, and the safety number changes.
    await bob.evaluate("""() => new Promise((resolve) => {
        const me = JSON.parse(localStorage.getItem('parley.user')).user_id;
        const request = indexedDB.deleteDatabase('parley-e2e:' + me);
        request.onsuccess = request.onerror = request.onblocked = () => resolve();
    })""")
    await bob.reload()
    await expect(bob.locator("body")).to_have_attribute("data-e2e", "ready", timeout=15_000)
    notice = by_id(alice, "e2e-key-changed")
    await expect(notice).to_be_visible(timeout=15_000)
    await expect(notice).to_contain_text("security key changed")
    await expect(by_id(alice, "e2e-badge")).to_have_attribute("data-verified", "false")
    await by_id(alice, "e2e-compare").click()
    digits = by_id(alice, "safety-number")
    await expect(digits).to_have_attribute("data-digits", re.compile(r"^\d{60}$"), timeout=15_000)
    assert await digits.get_attribute("data-digits") != numbers[0]
    await expect(by_id(alice, "safety-status")).to_have_attribute("data-verified", "false")


async def test_a_ciphertext_changed_or_replayed_on_the_way_is_shown_as_undecryptable(open_page):
    alice, bob, a, b = await two_friends(open_page)
    await turn_on_encryption(alice, bob, a, b)
    await send(alice, "first, as sent")
    await expect(encrypted_message(bob, "first, as sent")).to_have_count(1, timeout=20_000)

    # Bob's socket, once armed, gets each encrypted message with his ciphertext's body altered
    # ("tamper"), or with the envelope of an earlier message in its place ("replay").
    armed = {"on": "", "first": None}

    def tamper(text: str | bytes) -> str | bytes:
        if isinstance(text, bytes):
            return text
        frame = json.loads(text)
        if frame.get("type") != "message.new" or "encrypted" not in (frame.get("data") or {}):
            return text
        if not armed["on"]:
            armed["first"] = armed["first"] or frame["data"]["encrypted"]
            return text
        if armed["on"] == "replay":
            frame["data"]["encrypted"] = armed["first"]
            return json.dumps(frame)
        for ciphertext in frame["data"]["encrypted"]["ciphertexts"]:
            body = ciphertext["body"]
            middle = len(body) - 6  # inside the MAC: the message authenticates no more
            ciphertext["body"] = body[:middle] + ("A" if body[middle] != "A" else "B") + body[middle + 1:]
        return json.dumps(frame)

    async def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        ws.on_message(lambda text: server.send(text))
        server.on_message(lambda text: ws.send(tamper(text)))

    await bob.context.route_web_socket(re.compile(r"/ws$"), route)
    await bob.reload()
    await expect(by_id(bob, "connection-status")).to_contain_text("Connected", timeout=15_000)
    await open_chat_with(bob, a)
    await expect(encrypted_message(bob, "first, as sent")).to_have_count(1, timeout=15_000)
    await send(alice, "second, as sent")  # its envelope is the one replayed below
    await expect(encrypted_message(bob, "second, as sent")).to_have_count(1, timeout=15_000)
    assert armed["first"] is not None
    armed["on"] = "tamper"
    await send(alice, "this must never show")
    failed = by_id(bob, "message").and_(bob.locator('[data-e2e="failed"]'))
    await expect(failed).to_have_count(1, timeout=20_000)
    await expect(failed).to_contain_text("could not be decrypted")
    await expect(message(bob, "this must never show")).to_have_count(0)

    # A replay: an earlier ciphertext under a new message is refused, not shown twice.
    armed["on"] = "replay"
    await send(alice, "nor this one")
    await expect(failed).to_have_count(2, timeout=20_000)
    await expect(message(bob, "second, as sent")).to_have_count(1)
    await expect(message(bob, "nor this one")).to_have_count(0)


async def test_without_the_olm_files_the_page_works_and_says_why_encryption_is_unavailable(open_page, browser, base_url):
    alice = await open_page()
    # Bob's browser gets 404 for olm.js and olm.wasm (a gateway installed without them); no
    # service worker, so nothing comes from a cache either.
    context = await browser.new_context(service_workers="block")
    try:
        await context.route(re.compile(r"/app/vendor/dist/olm\.(js|wasm)$"), lambda route: route.fulfill(status=404, body="not found"))
        bob = await context.new_page()
        await bob.goto(base_url)
        a, b = unique("alice"), unique("bob")
        await register(alice, a)
        await register(bob, b)
        await befriend(alice, bob, b)
        await open_chat_with(alice, b)
        await open_chat_with(bob, a)
        await send(bob, "plain still works")
        await expect(message(alice, "plain still works")).to_have_count(1, timeout=15_000)
        await by_id(bob, "e2e-turn-on").click()
        await expect(by_id(bob, "error-banner")).to_contain_text("olm.js", timeout=10_000)
    finally:
        await context.close()


async def test_a_chinese_page_says_it_in_chinese(open_page):
    page = await open_page(locale="zh-CN")
    texts = await page.evaluate("""async () => {
        const { t } = await import('/app/js/i18n.js');
        return [t('e2e.before_device'), t('e2e.turn_on')];
    }""")
    assert texts == ["🔒 此消息发送于添加此设备之前", "开启端到端加密"]


async def test_a_new_device_reads_earlier_messages_only_once_my_other_device_shares_them(open_page, browser, base_url):
    alice, bob, a, b = await two_friends(open_page)
    await turn_on_encryption(alice, bob, a, b)
    earlier = f"said before the laptop {unique('z')}"
    await send(bob, earlier)
    await expect(encrypted_message(alice, earlier)).to_have_count(1, timeout=20_000)

    # Alice logs in on a second browser: a new device, with keys of its own.
    laptop = await open_page()
    await log_in(laptop, a)
    await expect(laptop.locator("body")).to_have_attribute("data-e2e", "ready", timeout=15_000)  # its keys published
    await open_chat_with(laptop, b)
    before = by_id(laptop, "message").and_(laptop.locator('[data-e2e="before"]'))
    await expect(before).to_have_count(1, timeout=20_000)
    await expect(before).to_contain_text("Sent before this device was added")
    await expect(message(laptop, earlier)).to_have_count(0)

    # New messages reach both of her devices (and her other device gets what the laptop sends).
    later = f"after the laptop {unique('w')}"
    await send(bob, later)
    await expect(encrypted_message(laptop, later)).to_have_count(1, timeout=20_000)
    await expect(encrypted_message(alice, later)).to_have_count(1, timeout=20_000)
    from_laptop = f"from the laptop {unique('v')}"
    await send(laptop, from_laptop)
    await expect(encrypted_message(bob, from_laptop)).to_have_count(1, timeout=20_000)
    await expect(encrypted_message(alice, from_laptop)).to_have_count(1, timeout=20_000)

    # Her first device offers the history; once shared, the laptop reads the earlier message.
    banner = by_id(alice, "e2e-new-device")
    await expect(banner).to_be_visible(timeout=15_000)
    await by_id(alice, "e2e-share-history").click()
    await expect(by_id(alice, "e2e-share-progress")).to_contain_text("Shared", timeout=15_000)
    await expect(encrypted_message(laptop, earlier)).to_have_count(1, timeout=20_000)


async def test_burn_after_reading_in_an_encrypted_conversation(open_page):
    alice, bob, a, b = await two_friends(open_page)
    await turn_on_encryption(alice, bob, a, b)
    await by_id(alice, "burn-toggle").click()
    await by_id(alice, "burn-select").select_option("5")
    await send(alice, "read me once, privately")
    # The server withholds the ciphertext until Bob opens it; then it is decrypted and burns.
    sealed = by_id(bob, "message").and_(bob.locator('[data-burn="sealed"]'))
    await expect(sealed).to_have_count(1, timeout=20_000)
    await expect(message(bob, "read me once, privately")).to_have_count(0)
    await sealed.get_by_test_id("burn-open").click()
    opened = encrypted_message(bob, "read me once, privately")
    await expect(opened).to_have_count(1, timeout=15_000)
    await expect(opened).to_have_attribute("data-burn", "open")
    await expect(message(bob, "read me once, privately")).to_have_count(0, timeout=15_000)


async def test_logging_out_takes_this_devices_keys_away(open_page):
    alice, bob, a, b = await two_friends(open_page)
    await turn_on_encryption(alice, bob, a, b)
    await send(bob, "before alice logs out")
    await expect(encrypted_message(alice, "before alice logs out")).to_have_count(1, timeout=20_000)
    # Her new keys are made well after it (the client allows a minute of difference between clocks).
    await alice.clock.set_system_time(datetime.now(UTC) + timedelta(minutes=3))
    databases = "async () => (await indexedDB.databases()).map((d) => d.name).filter((n) => n.startsWith('parley-e2e:'))"
    assert len(await alice.evaluate(databases)) == 1
    # What the store holds: a non-extractable AES-GCM key, and the pickle key only wrapped by it.
    stored = await alice.evaluate("""async () => {
        const me = JSON.parse(localStorage.getItem('parley.user')).user_id;
        const db = await new Promise((ok, no) => { const r = indexedDB.open('parley-e2e:' + me); r.onsuccess = () => ok(r.result); r.onerror = no; });
        const get = (store, id) => new Promise((ok) => { const r = db.transaction(store).objectStore(store).get(id); r.onsuccess = () => ok(r.result); });
        const wrap = await get('meta', 'wrap');
        const pickle = await get('meta', 'pickle');
        let exported = 'refused';
        try { await crypto.subtle.exportKey('raw', wrap); exported = 'exported'; } catch (e) { exported = e.name; }
        const plain = await new Promise((ok) => { const r = db.transaction('plain').objectStore('plain').getAll(); r.onsuccess = () => ok(r.result); });
        db.close();
        return {type: wrap.constructor.name, extractable: wrap.extractable, algorithm: wrap.algorithm.name, exported,
                pickle: Object.keys(pickle).sort(), sealed: plain.every((v) => typeof v === 'string' || (v.iv && v.data))};
    }""")
    assert stored == {"type": "CryptoKey", "extractable": False, "algorithm": "AES-GCM", "exported": "InvalidAccessError",
                      "pickle": ["data", "iv"], "sealed": True}, stored
    await by_id(alice, "logout").click()
    await expect(by_id(alice, "auth-username")).to_be_visible(timeout=10_000)
    assert await alice.evaluate(databases) == []  # nothing of the account stays in this browser
    # Logged in again: new keys, and what came before cannot be read here.
    await log_in(alice, a)
    await expect(alice.locator("body")).to_have_attribute("data-e2e", "ready", timeout=15_000)
    await open_chat_with(alice, b)
    before = by_id(alice, "message").and_(alice.locator('[data-e2e="before"]'))
    await expect(before).to_have_count(1, timeout=20_000)
    await send(bob, "after she is back")
    await expect(encrypted_message(alice, "after she is back")).to_have_count(1, timeout=20_000)


async def test_a_message_typed_as_the_peer_turned_encryption_on_goes_sealed(open_page):
    alice, bob, a, b = await two_friends(open_page)

    async def route(ws: WebSocketRoute) -> None:  # Bob never hears that the chat became encrypted
        server = ws.connect_to_server()
        ws.on_message(lambda text: server.send(text))
        server.on_message(lambda text: None if '"conversation.encrypted"' in str(text) else ws.send(text))

    await bob.context.route_web_socket(re.compile(r"/ws$"), route)
    await bob.reload()
    await expect(by_id(bob, "connection-status")).to_contain_text("Connected", timeout=15_000)
    await expect(bob.locator("body")).to_have_attribute("data-e2e", "ready", timeout=15_000)
    await open_chat_with(bob, a)
    await expect(alice.locator("body")).to_have_attribute("data-e2e", "ready", timeout=15_000)
    await open_chat_with(alice, b)
    await by_id(alice, "e2e-turn-on").click()
    await expect(by_id(alice, "e2e-badge")).to_be_visible(timeout=15_000)
    await expect(by_id(bob, "e2e-turn-on")).to_be_visible()  # Bob's page still thinks it plain
    await send(bob, "typed before I knew")
    await expect(encrypted_message(alice, "typed before I knew")).to_have_count(1, timeout=20_000)
    await expect(by_id(bob, "e2e-badge")).to_be_visible()
    await expect(encrypted_message(bob, "typed before I knew")).to_have_count(1)
