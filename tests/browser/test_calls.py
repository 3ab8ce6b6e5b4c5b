"""Voice and video calls in the web client (docs/protocol.md "Calls"), in Chromium with a fake
camera and microphone: media really flows between two pages (the remote video plays, inbound
RTP bytes grow), the call leaves its message in both timelines, drawn from each side, and the
ways a call does not happen are told in words.

The page exposes its current call as `window.parleyCall` (its RTCPeerConnection as `.pc`).
The first test calls before any message (the invite names the friend: no conversation id yet).
What is read from the page's stats is polled until it holds (`eventually`): Playwright's
`wait_for_function` does not poll an async predicate (its promise counts as truthy: the wait
ends at once with the promise's value, false included).
"""
import re

from playwright.async_api import Page, expect

from tests.browser.conftest import CALL_RING_SECONDS
from tests.browser.test_web_client import (
    befriend, by_id, contact, log_in, message, open_chat_with, register, send, two_friends, unique,
)
from tests.support.waiting import eventually

# The web client gives up on an answered call that found no media path after this long
# (services/gateway/web/js/calls.js CONNECT_MS).
CONNECT_MS = 20_000

# The remote <video> plays: the browser decoded frames (videoWidth) and its clock moves.
REMOTE_VIDEO_PLAYS = """async () => {
  const video = document.querySelector('[data-testid=remote-video]');
  if (!video || video.videoWidth === 0 || video.currentTime === 0) return false;
  const before = video.currentTime;
  await new Promise((resolve) => setTimeout(resolve, 700));
  return video.currentTime > before;
}"""

INBOUND_BYTES = """async (kind) => {
  let bytes = 0;
  (await window.parleyCall.pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === kind) bytes += r.bytesReceived;
  });
  return bytes;
}"""

# ICE finished gathering on this page and found no candidate at all (relay only, no TURN).
NO_LOCAL_CANDIDATE = """async () => {
  const pc = window.parleyCall && window.parleyCall.pc;
  if (!pc || pc.iceGatheringState !== 'complete') return false;
  let local = 0;
  (await pc.getStats()).forEach((r) => { if (r.type === 'local-candidate') local += 1; });
  return local === 0;
}"""

# The local candidate's type of the pair ICE selected (through TURN: "relay").
SELECTED_LOCAL_CANDIDATE_TYPE = """async () => {
  const stats = await window.parleyCall.pc.getStats();
  let pair = null;
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
  });
  if (!pair) stats.forEach((r) => { if (r.type === 'candidate-pair' && r.state === 'succeeded' && r.nominated) pair = r; });
  return pair ? stats.get(pair.localCandidateId).candidateType : null;
}"""


def call_message(page: Page, pattern: re.Pattern[str]):
    return by_id(page, "message").filter(has_text=pattern)


async def chatting(open_page, url: str | None = None, hello: bool = True) -> tuple[Page, Page, str, str]:
    """Two friends looking at their conversation, which has a first message if `hello`."""
    if url is None:
        alice, bob, a, b = await two_friends(open_page)
    else:
        alice, bob, a, b = await two_friends(lambda **kw: open_page(url=url, **kw))
    await open_chat_with(alice, b)
    if hello:
        await send(alice, "call me?")
        await expect(message(alice, "call me?")).to_have_attribute("data-state", re.compile("sent|read"), timeout=10_000)
    await open_chat_with(bob, a)
    if hello:
        await expect(message(bob, "call me?")).to_have_count(1, timeout=10_000)
    return alice, bob, a, b


async def media_flows(page: Page, kind: str = "video") -> None:
    """The remote video plays (for video), and inbound RTP bytes of `kind` grow from now on."""
    if kind == "video":
        await eventually(lambda: page.evaluate(REMOTE_VIDEO_PLAYS), "the remote video plays", timeout=20)
    before = await page.evaluate(INBOUND_BYTES, kind)

    async def grown() -> bool:
        return await page.evaluate(INBOUND_BYTES, kind) > before

    await eventually(grown, f"{kind} arrives (inbound RTP bytes grow past {before})")


async def ring(caller: Page, callee: Page, caller_name: str, media: str = "video") -> None:
    await by_id(caller, f"call-{media}").click()
    incoming = by_id(callee, "incoming-call")
    await expect(incoming).to_be_visible(timeout=15_000)
    await expect(incoming).to_contain_text(caller_name)
    await expect(incoming).to_contain_text("video call" if media == "video" else "voice call")


async def test_a_video_call_plays_both_ways_and_leaves_its_message(open_page, shoot):
    alice, bob, a, b = await chatting(open_page, hello=False)
    await ring(alice, bob, a)
    await expect(by_id(alice, "call-status")).to_contain_text(re.compile("Calling|Starting"))
    await shoot(bob, "call-incoming")
    await by_id(bob, "call-accept").click()

    for page in (alice, bob):
        await expect(by_id(page, "call-screen")).to_be_visible()
        await media_flows(page, "video")
        await media_flows(page, "audio")
        await expect(by_id(page, "call-status")).to_have_text(re.compile(r"^0:\d\d$"), timeout=10_000)
    await by_id(alice, "call-mute").click()
    await expect(by_id(alice, "call-mute")).to_have_attribute("aria-pressed", "true")
    await by_id(alice, "call-mute").click()
    await by_id(bob, "call-camera").click()
    await expect(by_id(bob, "local-video")).to_be_hidden()
    await by_id(bob, "call-camera").click()
    await expect(by_id(bob, "local-video")).to_be_visible()
    await shoot(alice, "call-video")

    await by_id(alice, "call-hangup").click()
    # First: a call notice is shown for 8 s only (calls.js NOTICE_SHOWN_MS).
    await expect(by_id(bob, "call-notice")).to_contain_text("hung up")
    for page in (alice, bob):
        await expect(by_id(page, "call-screen")).to_be_hidden(timeout=10_000)
        await expect(by_id(page, "composer-input")).to_be_visible()
        await expect(call_message(page, re.compile(r"Video call, \d+ s"))).to_have_count(1, timeout=10_000)
    assert await bob.evaluate("window.parleyCall") is None


async def test_a_declined_call_is_told_to_the_caller(open_page):
    alice, bob, a, b = await chatting(open_page)
    await ring(alice, bob, a, "audio")
    await by_id(bob, "call-decline").click()
    await expect(by_id(bob, "incoming-call")).to_be_hidden()
    await expect(by_id(alice, "call-notice")).to_contain_text(f"{b} declined", timeout=10_000)
    await expect(by_id(alice, "call-screen")).to_be_hidden()
    await expect(message(alice, "Voice call, declined")).to_have_count(1, timeout=10_000)
    await expect(message(bob, "Declined voice call")).to_have_count(1, timeout=10_000)


async def test_a_call_cancelled_while_ringing_is_a_missed_call_for_the_callee(open_page):
    alice, bob, a, b = await chatting(open_page)
    await ring(alice, bob, a)
    await expect(by_id(alice, "call-hangup")).to_have_text("Cancel")
    await by_id(alice, "call-hangup").click()
    await expect(by_id(bob, "incoming-call")).to_be_hidden(timeout=10_000)
    await expect(by_id(bob, "call-notice")).to_contain_text(f"Missed call from {a}")
    await expect(message(alice, "Cancelled video call")).to_have_count(1, timeout=10_000)
    await expect(message(bob, "Missed video call")).to_have_count(1, timeout=10_000)


async def test_ringing_on_every_device_stops_on_the_others_when_one_answers(open_page):
    alice, bob, a, b = await chatting(open_page)
    bob_phone = await open_page()
    await log_in(bob_phone, b)
    await ring(alice, bob, a, "audio")
    await expect(by_id(bob_phone, "incoming-call")).to_be_visible(timeout=10_000)
    await by_id(bob_phone, "call-accept").click()
    await expect(by_id(bob, "incoming-call")).to_be_hidden(timeout=10_000)
    await expect(by_id(bob, "call-notice")).to_contain_text("answered on another device")
    await media_flows(alice, "audio")
    await media_flows(bob_phone, "audio")
    await expect(by_id(bob_phone, "call-peer-name")).to_have_text(a)  # a voice call shows the name
    await by_id(bob_phone, "call-hangup").click()
    await expect(by_id(alice, "call-screen")).to_be_hidden(timeout=10_000)
    await expect(call_message(alice, re.compile(r"Voice call, \d+ s"))).to_have_count(1, timeout=10_000)


async def test_calling_someone_in_another_call_says_they_are_busy(open_page):
    alice, bob, a, b = await chatting(open_page)
    carol = await open_page()
    await register(carol, unique("carol"))
    await befriend(carol, bob, b)
    await open_chat_with(carol, b)
    await ring(alice, bob, a, "audio")
    await by_id(bob, "call-accept").click()
    await expect(by_id(alice, "call-status")).to_have_text(re.compile(r"^0:\d\d$"), timeout=15_000)
    await by_id(carol, "call-video").click()
    await expect(by_id(carol, "call-notice")).to_contain_text(f"{b} is busy", timeout=10_000)
    await expect(message(carol, "Video call, busy")).to_have_count(1, timeout=10_000)
    await expect(by_id(bob, "call-screen")).to_be_visible()  # Bob's call goes on
    await expect(by_id(bob, "incoming-call")).to_be_hidden()


async def test_calling_someone_offline_says_so(open_page):
    alice, bob, a, b = await chatting(open_page)
    await bob.close()
    await expect(contact(alice, b)).to_have_attribute("data-online", "false", timeout=15_000)
    await by_id(alice, "call-audio").click()
    await expect(by_id(alice, "call-notice")).to_contain_text(f"{b} is offline", timeout=10_000)
    await expect(by_id(alice, "call-screen")).to_be_hidden()


async def test_a_camera_refused_by_the_user_is_told_in_words(open_page):
    alice, bob, a, b = await chatting(open_page)
    await alice.evaluate("""() => {
      navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('denied', 'NotAllowedError'));
    }""")
    await by_id(alice, "call-video").click()
    await expect(by_id(alice, "call-notice")).to_contain_text("permission was denied", timeout=10_000)
    await expect(by_id(alice, "call-screen")).to_be_hidden()
    await expect(by_id(bob, "incoming-call")).to_be_hidden()


async def test_a_call_that_finds_no_network_path_says_it_could_not_connect(open_page, base_url):
    """Relay only, on a stack that offers no TURN: no candidate at all, so no path. Chromium's ICE
    then stays "new" for ever (no candidate pair to fail); the page's own deadline ends the call
    (CONNECT_MS after the answer). The pages run on Playwright's clock (real speed) and Alice's
    jumps over that deadline once both sides have found nothing, instead of waiting 20 s."""
    url = f"{base_url}/?relay=1"

    async def on_a_clock(**kwargs) -> Page:
        page = await open_page(url="about:blank", **kwargs)
        await page.clock.install()  # before the page's scripts: every timer of theirs is the clock's
        await page.goto(url)
        return page

    alice, bob, a, b = await chatting(on_a_clock)
    await ring(alice, bob, a, "audio")
    await by_id(bob, "call-accept").click()
    for page in (alice, bob):
        await expect(by_id(page, "call-status")).to_have_text("Connecting…")
        await eventually(lambda page=page: page.evaluate(NO_LOCAL_CANDIDATE), "ICE gathered no candidate at all")
    await alice.clock.fast_forward(CONNECT_MS)
    await expect(by_id(alice, "call-notice")).to_contain_text("could not connect")
    await expect(by_id(alice, "call-screen")).to_be_hidden()
    # Bob's page is told by Alice's hang-up (or its own deadline, were it first).
    await expect(by_id(bob, "call-notice")).to_contain_text(re.compile("could not connect|hung up"), timeout=40_000)
    await expect(by_id(bob, "call-screen")).to_be_hidden()


async def test_an_unanswered_call_ends_as_missed(open_page, calls_stack):
    alice, bob, a, b = await chatting(open_page, calls_stack)
    await ring(alice, bob, a, "audio")
    timeout = (CALL_RING_SECONDS + 10) * 1000
    await expect(by_id(alice, "call-notice")).to_contain_text(f"No answer from {b}", timeout=timeout)
    await expect(by_id(bob, "incoming-call")).to_be_hidden()
    await expect(by_id(bob, "call-notice")).to_contain_text(f"Missed call from {a}")
    await expect(message(alice, "Voice call, no answer")).to_have_count(1, timeout=10_000)
    await expect(message(bob, "Missed voice call")).to_have_count(1, timeout=10_000)


async def test_a_call_forced_through_turn_relays_its_media(turnserver, open_page, calls_stack):
    alice, bob, a, b = await chatting(open_page, f"{calls_stack}/?relay=1")
    ice = await alice.evaluate("async () => (await import('/app/js/wire.js')).conn.request('calls.ice_servers', {})")
    assert any(url.startswith("turn:") for server in ice["ice_servers"] for url in server["urls"]), ice
    await ring(alice, bob, a)
    await by_id(bob, "call-accept").click()
    for page in (alice, bob):
        await media_flows(page, "video")
        assert await page.evaluate(SELECTED_LOCAL_CANDIDATE_TYPE) == "relay"
    await by_id(bob, "call-hangup").click()
    await expect(call_message(alice, re.compile(r"Video call, \d+ s"))).to_have_count(1, timeout=10_000)

