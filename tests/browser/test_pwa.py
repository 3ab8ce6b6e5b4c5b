"""The web client as an installed app (issue 25): its service worker controls the page, Chromium
finds it installable, a push shows (and a withdraw removes) a conversation's notification, a
notification click opens the conversation, and a reload with no network opens the app shell
with the saved chats and an offline banner, live again once the network is back.

These run in a browser profile on disk (`app_context`): Chromium never offers to install, nor
lets a page subscribe to push, in an incognito context (what `browser.new_context()` makes).

Pushes are delivered through the DevTools protocol (`ServiceWorker.deliverPushMessage`), the way
DevTools' own "Push" button does, with the payload docs/push.md describes; headless Chromium
cannot click a notification, so the click is a `notificationclick` event dispatched in the
worker with the shown notification (the worker's own listener runs). Turning notifications on
is tested against a `push.config` reply given by a WebSocket route, with the browser's
`pushManager.subscribe` stubbed: Chromium without Google's push service never answers it (the
push service itself is tested end to end in tests/integration/test_push.py).
"""
import json
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, CDPSession, Page, WebSocket, WebSocketRoute, expect

from tests.browser.conftest import DESKTOP, BrowserSettings, chromium_path, screenshots
from tests.browser.test_web_client import by_id, log_in, send
from tests.support.client import Client, befriend, new_user
from tests.support.waiting import eventually

SHOWN = """async () => (await (await navigator.serviceWorker.ready).getNotifications())
  .map((n) => ({title: n.title, body: n.body, tag: n.tag, data: n.data}))"""

# The worker's own notificationclick listener, given the notification shown for `tag`.
CLICK = """async (tag) => {
  const [shown] = await self.registration.getNotifications({tag});
  self.dispatchEvent(new NotificationEvent("notificationclick", {notification: shown}));
  return Boolean(shown);
}"""


@pytest.fixture
async def app_context(browser: Browser, browser_settings: BrowserSettings, tmp_path, request) -> AsyncIterator[BrowserContext]:
    """A Chromium profile of its own on disk, notifications allowed, as an installed app has."""
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    context = await browser.browser_type.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=chromium_path(browser_settings), args=args, viewport=DESKTOP,
    )
    try:
        yield context
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            await screenshots(context.pages, request.node.name)
    finally:
        await context.close()


async def app_page(context: BrowserContext, base_url: str) -> Page:
    """The profile's first tab, at the web client, once its service worker controls it."""
    page = context.pages[0]
    await page.goto(base_url)
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15_000)
    return page


async def alice_and_bob(port: int) -> tuple[Client, Client, str]:
    """Alice (to log in in the browser; her socket closed) and Bob, friends, Bob having written to
    her; and the conversation's id."""
    alice = await new_user(port)
    bob = await new_user(port)
    await befriend(alice, bob)
    sent = await bob.send_text(alice.user_id, "see you at six")
    await alice.close()
    return alice, bob, sent["conversation_id"]


async def worker_registration(page: Page, scope: str) -> tuple[CDPSession, str]:
    """A DevTools session on the page and its worker's registration id (for deliverPushMessage)."""
    cdp = await page.context.new_cdp_session(page)
    found: dict[str, str] = {}

    def updated(event: dict[str, Any]) -> None:
        for registration in event["registrations"]:
            if not registration["isDeleted"]:
                found[registration["scopeURL"]] = registration["registrationId"]

    cdp.on("ServiceWorker.workerRegistrationUpdated", updated)
    await cdp.send("ServiceWorker.enable")
    await eventually(lambda: scope in found, f"the worker registration of {scope}")
    return cdp, found[scope]


class Pusher:
    """Pushes to the page's worker, as the push service would (DevTools' deliverPushMessage)."""

    def __init__(self, page: Page, cdp: CDPSession, origin: str, registration_id: str):
        self.page, self.cdp, self.origin, self.registration_id = page, cdp, origin, registration_id

    async def push(self, payload: dict[str, Any], then_shown: list[str], what: str) -> None:
        """Deliver `payload` until the notifications shown have the bodies `then_shown`. Chromium
        now and then drops the first push delivered this way, the worker never hearing of it (in
        one run of five or so here); a push service delivers at least once and every payload here
        is idempotent (one notification per tag), so it is delivered again, up to three times. A
        worker that does not show or withdraw fails every attempt."""
        for attempt in range(3):
            await self.cdp.send("ServiceWorker.deliverPushMessage", {
                "origin": self.origin, "registrationId": self.registration_id, "data": json.dumps(payload)})
            try:
                await eventually(lambda: self.bodies(then_shown), what, timeout=5 if attempt < 2 else 15)
                return
            except AssertionError:
                if attempt == 2:
                    raise

    async def bodies(self, expected: list[str]) -> bool:
        return [n["body"] for n in await self.page.evaluate(SHOWN)] == expected


async def test_the_app_is_installable_and_its_worker_controls_the_page(app_context: BrowserContext, base_url: str):
    page = await app_page(app_context, base_url)
    assert page.url == f"{base_url}/app/", "the gateway's / is the app at /app/"
    cdp = await page.context.new_cdp_session(page)
    assert (await cdp.send("Page.getInstallabilityErrors"))["installabilityErrors"] == []
    manifest = await cdp.send("Page.getAppManifest")
    assert manifest["errors"] == [] and manifest["url"] == f"{base_url}/app/manifest.webmanifest"
    # The shell is precached under its version: the page and its modules are there for offline use.
    cached = await page.evaluate("""async () => {
      const names = (await caches.keys()).filter((n) => n.startsWith("parley-shell-"));
      const cache = await caches.open(names[0]);
      return {names, urls: (await cache.keys()).map((r) => new URL(r.url).pathname)};
    }""")
    assert len(cached["names"]) == 1
    for url in ("/app/", "/app/js/main.js", "/app/js/views/chat.js", "/app/style.css", "/app/icons/icon-192.png",
                "/app/manifest.webmanifest", "/app/stickers/party.svg", "/app/js/locales/zh-CN.js"):
        assert url in cached["urls"], url


async def test_a_push_shows_a_notification_a_withdraw_removes_it_and_a_click_opens_the_chat(
        app_context: BrowserContext, base_url: str, stack):
    alice, bob, conversation_id = await alice_and_bob(stack.gateway_ports[0])
    try:
        sent: list[dict[str, Any]] = []
        received: list[dict[str, Any]] = []

        def watch(ws: WebSocket) -> None:
            ws.on("framesent", lambda text: sent.append(json.loads(text)))
            ws.on("framereceived", lambda text: received.append(json.loads(text)))

        app_context.pages[0].on("websocket", watch)
        page = await app_page(app_context, base_url)
        await app_context.grant_permissions(["notifications"], origin=base_url)
        await log_in(page, alice.username)
        await expect(by_id(page, "conversation")).to_have_count(1)
        # The stack runs the push service: push.config gives its VAPID key, and the banner offers
        # notifications (nothing is asked of the browser until its button is pressed).
        ask = await eventually(lambda: next((f for f in sent if f["type"] == "push.config"), None), "push.config asked")
        reply = await eventually(lambda: next((f for f in received if f.get("id") == ask["id"]), None), "its reply")
        assert reply["ok"] is True and reply["data"]["vapid_public_key"] and "webpush" in reply["data"]["providers"]
        await expect(by_id(page, "push-banner")).to_be_visible()
        assert await page.evaluate("Notification.permission") == "granted"

        cdp, registration = await worker_registration(page, f"{base_url}/app/")
        pusher = Pusher(page, cdp, base_url, registration)
        tag = f"c:{conversation_id}"
        message = {"kind": "message", "tag": tag, "conversation_id": conversation_id, "title": bob.username,
                   "body": "see you at six", "badge": 1, "url": f"/app/#c={conversation_id}"}
        await pusher.push(message, ["see you at six"], "the notification shown")
        shown = await page.evaluate(SHOWN)
        assert [(n["title"], n["body"], n["tag"]) for n in shown] == [(bob.username, "see you at six", tag)]
        assert shown[0]["data"] == {"url": f"{base_url}/app/#c={conversation_id}", "conversation_id": conversation_id,
                                    "kind": "message"}

        # A newer message of the same conversation replaces it (one notification per conversation).
        await pusher.push({**message, "body": "and bring the map"}, ["and bring the map"], "the notification replaced")

        # The click: the worker focuses this window and has it open the conversation.
        await expect(by_id(page, "composer-input")).to_be_hidden()
        worker = page.context.service_workers[0]
        assert await worker.evaluate(CLICK, tag)
        await expect(page.locator("#chat-title")).to_have_text(bob.username)
        await expect(by_id(page, "message").filter(has_text="see you at six")).to_be_visible()
        await eventually(lambda: pusher.bodies([]), "the clicked notification closed")

        # Shown again, then withdrawn (read on another device): it goes.
        await pusher.push(message, ["see you at six"], "the notification shown again")
        await pusher.push({"kind": "withdraw", "tag": tag, "badge": 0}, [], "the withdrawn notification closed")

        # A notification's URL opened in a new window: the conversation opens there.
        second = await app_context.new_page()
        await second.goto(f"{base_url}/app/#c={conversation_id}")
        await expect(second.locator("#chat-title")).to_have_text(bob.username)
        assert "#c=" not in second.url, "the address no longer carries the conversation"
    finally:
        await alice.close()
        await bob.close()


async def test_with_no_network_the_app_opens_with_the_saved_chats_and_comes_back_live(
        app_context: BrowserContext, base_url: str, stack):
    alice, bob, conversation_id = await alice_and_bob(stack.gateway_ports[0])
    try:
        page = await app_page(app_context, base_url)
        await log_in(page, alice.username)
        await by_id(page, "conversation").click()
        await expect(by_id(page, "message").filter(has_text="see you at six")).to_be_visible()
        await bob.send_text(alice.user_id, "bring the map")
        await expect(by_id(page, "message").filter(has_text="bring the map")).to_be_visible()
        saved = f"parley.offline.{alice.user_id}"
        await eventually(lambda: page.evaluate(f"() => (localStorage.getItem('{saved}') || '').includes('bring the map')"),
                         "the chat saved for offline use")

        await app_context.set_offline(True)
        response = await page.reload()
        assert response is not None and response.from_service_worker, "the page came from the worker's cache"
        await expect(by_id(page, "offline-banner")).to_be_visible()
        await expect(by_id(page, "offline-banner")).to_contain_text("offline")
        chat = by_id(page, "conversation")
        await expect(chat).to_have_count(1)
        await expect(chat).to_contain_text(bob.username)
        await expect(chat).to_contain_text("bring the map")
        await chat.click()
        await expect(by_id(page, "message").filter(has_text="see you at six")).to_be_visible()
        await expect(by_id(page, "message").filter(has_text="bring the map")).to_be_visible()
        # Read-only: the composer says why it cannot send.
        await expect(by_id(page, "composer-input")).to_be_disabled()
        await expect(by_id(page, "composer-notice")).to_contain_text("offline")

        await app_context.set_offline(False)
        await expect(by_id(page, "connection-status")).to_contain_text("Connected", timeout=20_000)
        await expect(by_id(page, "offline-banner")).to_be_hidden()
        await expect(by_id(page, "composer-input")).to_be_enabled()
        await bob.send_text(alice.user_id, "on my way")
        await expect(by_id(page, "message").filter(has_text="on my way")).to_be_visible()
        await send(page, "see you there")
        await eventually(lambda: any(m.get("text") == "see you there" for m in bob.inbox[conversation_id].values()),
                         "Bob got Alice's reply")
    finally:
        await alice.close()
        await bob.close()


# A VAPID public key's shape (an uncompressed P-256 point, URL-safe base64): the stub never checks it.
FAKE_VAPID_KEY = "BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U"
STUB_SUBSCRIBE = """(() => {
  const keys = {p256dh: "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
                auth: "tBHItJI5svbpez7KI4CCXg"};
  let current = null;
  PushManager.prototype.getSubscription = async function () { return current; };
  PushManager.prototype.subscribe = async function (options) {
    current = {
      endpoint: "https://push.example/send/abc123", options,
      toJSON: () => ({endpoint: "https://push.example/send/abc123", keys}),
      unsubscribe: async () => { current = null; window.__unsubscribed = true; return true; },
    };
    return current;
  };
})();"""


async def test_notifications_are_turned_on_from_the_banner_and_off_at_logout(
        app_context: BrowserContext, base_url: str, stack):
    alice, bob, _ = await alice_and_bob(stack.gateway_ports[0])
    asked: list[dict[str, Any]] = []

    def relay(ws: WebSocketRoute) -> None:
        """The page's socket, relayed to the gateway, but push.* answered here (as the push service would)."""
        server = ws.connect_to_server()

        def from_page(text: str | bytes) -> None:
            frame = json.loads(text)
            if frame.get("type", "").startswith("push."):
                asked.append(frame)
                data = {"vapid_public_key": FAKE_VAPID_KEY, "providers": ["webpush"]} if frame["type"] == "push.config" else {}
                ws.send(json.dumps({"type": "reply", "id": frame["id"], "ok": True, "data": data}))
            else:
                server.send(text)

        ws.on_message(from_page)
        server.on_message(lambda text: ws.send(text))

    try:
        page = app_context.pages[0]
        await page.route_web_socket(re.compile(r"/ws$"), relay)
        await page.add_init_script(STUB_SUBSCRIBE)
        await page.goto(base_url)
        await log_in(page, alice.username)
        banner = by_id(page, "push-banner")
        await expect(banner).to_be_visible()
        assert await page.evaluate("Notification.permission") == "default", "nothing was asked on load"

        await app_context.grant_permissions(["notifications"], origin=base_url)
        await by_id(page, "push-enable").click()
        await expect(banner).to_be_hidden()
        subscribe = await eventually(lambda: next((f for f in asked if f["type"] == "push.subscribe"), None),
                                     "push.subscribe sent")
        assert subscribe["data"] == {
            "kind": "webpush", "endpoint": "https://push.example/send/abc123", "locale": "en",
            "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
                     "auth": "tBHItJI5svbpez7KI4CCXg"},
        }

        await by_id(page, "logout").click()
        await expect(by_id(page, "auth-username")).to_be_visible()
        assert [f["type"] for f in asked] == ["push.config", "push.subscribe", "push.unsubscribe"]
        assert await page.evaluate("window.__unsubscribed === true"), "the browser's subscription was dropped"
        assert await page.evaluate(f"() => localStorage.getItem('parley.offline.{alice.user_id}')") is None
    finally:
        await alice.close()
        await bob.close()
