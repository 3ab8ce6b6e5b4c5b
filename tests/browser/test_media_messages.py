"""Issue 16 in the web client, in Chromium: an emoji picked into the composer, a built-in sticker
(large, no bubble), a voice message recorded with the fake microphone and played by the friend
(the audio's time advances, the bar moves and seeks), an image drawn from its thumbnail and
opened in full, and an image made into a sticker of one's own.

Chromium runs with a fake microphone (a beep; tests/browser/conftest.py). One test, two people,
to keep the suite short.
"""
import re

from playwright.async_api import Page, expect

from tests.browser.test_web_client import by_id, open_chat_with, png, two_friends


def message_with(page: Page, testid: str):
    return by_id(page, "message").filter(has=page.get_by_test_id(testid))


async def js(page: Page, script: str, arg=None):
    return await page.evaluate(script, arg)


async def test_emoji_stickers_voice_messages_and_thumbnails(open_page, shoot, tmp_path):
    alice, bob, a, b = await two_friends(open_page)
    thumbnails: list[str] = []
    bob.on("request", lambda request: thumbnails.append(request.url) if request.url.endswith("/thumbnail") else None)
    await open_chat_with(alice, b)
    await open_chat_with(bob, a)

    # Emoji: searched, picked in at the caret, remembered as recently used, sent.
    composer = by_id(alice, "composer-input")
    await composer.fill("dinner? ")
    await by_id(alice, "emoji-button").click()
    panel = by_id(alice, "emoji-panel")
    await expect(panel).to_be_visible()
    await by_id(alice, "emoji-search").fill("piz")
    await by_id(alice, "emoji-results").locator('[data-emoji="🍕"]').click()
    await expect(composer).to_have_value("dinner? 🍕")
    await by_id(alice, "emoji-search").fill("")
    await panel.locator('[data-testid="emoji-tab"][data-category="food"]').click()
    await expect(by_id(alice, "emoji-recent").locator('[data-emoji="🍕"]')).to_be_visible()
    await shoot(alice, "emoji-stickers")
    await composer.press("Escape")  # the panel stayed open for more
    await expect(panel).to_be_hidden()
    await composer.press("Enter")
    dinner = by_id(bob, "message").filter(has=bob.get_by_test_id("message-text").filter(has_text="dinner? 🍕"))
    await expect(dinner).to_have_count(1, timeout=10_000)

    # A reaction from the whole picker ("more" beside the common ones).
    await dinner.hover()
    await dinner.get_by_test_id("action-react").click()
    await dinner.get_by_test_id("emoji-more").click()
    await by_id(bob, "emoji-search").fill("taco")
    await by_id(bob, "emoji-results").locator('[data-emoji="🌮"]').click()
    await expect(by_id(bob, "emoji-panel")).to_be_hidden()
    await expect(by_id(alice, "reaction").and_(alice.locator('[data-emoji="🌮"]'))).to_contain_text("1", timeout=10_000)

    # A built-in sticker: drawn large on both screens, without a bubble.
    await by_id(alice, "sticker-button").click()
    choice = by_id(alice, "sticker-choice").and_(alice.locator('[data-pack="builtin"]')).first
    await expect(choice).to_be_visible(timeout=10_000)
    sticker_id = await choice.get_attribute("data-sticker-id")
    await choice.click()
    await expect(by_id(alice, "sticker-panel")).to_be_hidden()
    for page in (alice, bob):
        sticker = message_with(page, "message-sticker")
        await expect(sticker).to_have_count(1, timeout=10_000)
        await expect(sticker).to_have_class(re.compile(r"\bsticker\b"))
        await expect(sticker.get_by_test_id("message-sticker")).to_have_attribute("data-sticker-id", sticker_id or "")
    await bob.wait_for_function(  # the sticker's image has come and is decoded
        "() => { const img = document.querySelector('[data-testid=message-sticker]');"
        " return img !== null && img.complete && img.naturalWidth > 0; }", timeout=10_000)
    drawn = await js(bob, """() => {
        const img = document.querySelector('[data-testid=message-sticker]');
        const bubble = img.closest('.bubble');
        return {height: img.getBoundingClientRect().height,
                background: getComputedStyle(bubble).backgroundColor, border: getComputedStyle(bubble).borderTopColor};
    }""")
    assert drawn["height"] >= 150, drawn
    assert drawn["background"] == "rgba(0, 0, 0, 0)" and drawn["border"] == "rgba(0, 0, 0, 0)", drawn

    # A voice message: about 2 s from the fake microphone, with a running timer; then sent.
    await by_id(alice, "voice-button").click()
    await expect(by_id(alice, "voice-recorder")).to_be_visible(timeout=10_000)
    await expect(by_id(alice, "composer-input")).to_be_hidden()
    await expect(by_id(alice, "voice-timer")).to_have_text("0:02", timeout=5_000)
    await by_id(alice, "voice-send").click()
    await expect(by_id(alice, "voice-recorder")).to_be_hidden()
    voice = message_with(bob, "voice-player")
    await expect(voice).to_have_count(1, timeout=20_000)
    await expect(voice.get_by_test_id("voice-time")).to_have_text(re.compile(r"^0:0[23]$"))

    # The friend plays it: the audio's time advances, the bar fills; a click on the bar seeks.
    await voice.get_by_test_id("voice-play").click()
    await expect(voice.get_by_test_id("voice-player")).to_have_attribute("data-state", "playing", timeout=10_000)
    await bob.wait_for_function(  # the bar is redrawn each frame while it plays: it follows a moment later
        "() => document.querySelector('[data-testid=voice-audio]').currentTime > 0.4"
        " && parseFloat(document.querySelector('[data-testid=voice-fill]').style.width) > 10", timeout=10_000)
    await bob.mouse.move(5, 5)  # no message toolbar over the timeline
    await shoot(bob, "voice")
    await expect(voice.get_by_test_id("voice-player")).to_have_attribute("data-state", "paused", timeout=10_000)  # ended
    track = voice.get_by_test_id("voice-progress")
    box = await track.bounding_box()
    assert box is not None
    await bob.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    at = await js(bob, "() => document.querySelector('[data-testid=voice-audio]').currentTime")
    fill = await js(bob, "() => parseFloat(document.querySelector('[data-testid=voice-fill]').style.width)")
    assert 0.5 < at < 1.6 and 30 < fill < 70, (at, fill)

    # An image: the timeline shows its thumbnail (fits 320×320); a click opens the full image.
    image = tmp_path / "wide.png"
    image.write_bytes(png(800, 400))
    await by_id(alice, "file-input").set_input_files(str(image))
    shown = by_id(bob, "message-image")
    await expect(shown).to_have_attribute("data-source", "thumbnail", timeout=20_000)
    await bob.wait_for_function(
        "() => { const img = document.querySelector('[data-testid=message-image]');"
        " return img.complete && img.naturalWidth === 320 && img.naturalHeight === 160; }", timeout=10_000)
    assert any(url.endswith("/thumbnail") for url in thumbnails), thumbnails
    await shown.click()
    full = by_id(bob, "image-viewer-image")
    await expect(full).to_have_attribute("data-source", "full", timeout=10_000)
    await bob.wait_for_function(
        "() => document.querySelector('[data-testid=image-viewer-image]').naturalWidth === 800", timeout=10_000)
    await bob.keyboard.press("Escape")
    await expect(by_id(bob, "image-viewer")).to_be_hidden()

    # An "image" the server cannot read has no thumbnail (415): it is shown as a file card.
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not really a picture " * 50)
    async with alice.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/files")) as stored:
        await by_id(alice, "file-input").set_input_files(str(broken))
    assert (await stored.value).status == 201, await (await stored.value).text()  # stored as any file
    await expect(by_id(bob, "file-link").filter(has_text="broken.png")).to_have_count(1, timeout=20_000)

    # Bob makes the image a sticker of his own: it is listed in his panel, and can be sent.
    image_message = message_with(bob, "message-image")
    await image_message.hover()
    await image_message.get_by_test_id("action-sticker").click()
    await expect(by_id(bob, "toast")).to_contain_text("Added to your stickers", timeout=10_000)
    await by_id(bob, "sticker-button").click()
    mine = by_id(bob, "my-stickers").get_by_test_id("sticker-choice")
    await expect(mine).to_have_count(1, timeout=10_000)
    await mine.click()
    await expect(message_with(alice, "message-sticker")).to_have_count(2, timeout=10_000)
