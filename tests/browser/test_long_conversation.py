"""A conversation of 1,000 messages in the web client stays responsive: every page of history is
loaded by scrolling up until the DOM holds all 1,000, then an edit pushed for the oldest message
changes that one bubble and nothing else in the list, and a reaction shows at once.

Times are measured and printed (run with -s to see them), not held to tight bounds: the machine
running the tests may be busy. The property asserted is the incremental drawing.
"""
import asyncio
import time

from playwright.async_api import expect

from tests.browser.test_web_client import by_id, log_in, open_chat_with
from tests.support.client import befriend, new_user
from tests.support.waiting import eventually

COUNT = 1000

# Armed before the edit: resolves once the bubble of seq 1 shows the new text, with what else in
# the list changed meanwhile (nothing should) and the time it took from arming.
WATCH_EDIT = """
([seq, words]) => {
  const ol = document.getElementById('messages');
  const target = ol.querySelector(`li[data-seq="${seq}"]`);
  const outside = [];
  const armed = performance.now();
  window.__editSeen = new Promise((resolve) => {
    const observer = new MutationObserver((records) => {
      for (const r of records) if (!target.contains(r.target)) outside.push(`${r.type} ${r.target.nodeName}.${r.target.className || ''}`);
      const text = target.querySelector('[data-testid=message-text]');
      if (text && text.textContent.includes(words)) {
        observer.disconnect();
        setTimeout(() => resolve({ ms: performance.now() - armed, outside, count: ol.children.length }), 300);
      }
    });
    observer.observe(ol, { subtree: true, childList: true, characterData: true, attributes: true });
  });
}
"""

# The edit's drawing, as WATCH_EDIT saw it; null if it was not drawn within 15 s.
EDIT_SEEN = """
() => Promise.race([window.__editSeen, new Promise((resolve) => setTimeout(() => resolve(null), 15000))])
"""

LONG_TASKS = """
() => {
  window.__longest = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) window.__longest = Math.max(window.__longest, entry.duration);
  }).observe({ type: 'longtask', buffered: true });
}
"""


DEVICE = "web-long-conversation"


async def test_a_thousand_messages_page_in_and_an_edit_redraws_one_bubble(open_page, stack):
    port = stack.gateway_ports[0]
    # Alice's browser is a device that already received everything (acknowledged as this device),
    # so the page gets the conversation from history, page by page, as it scrolls up.
    alice = await new_user(port, device_id=DEVICE)
    bob = None
    try:
        bob = await new_user(port)
        await befriend(alice, bob)
        started = time.monotonic()
        for first in range(0, COUNT, 100):  # in order: one socket's sends are stored as sent
            await asyncio.gather(*(bob.send_text(alice.user_id, f"message {i:04d}") for i in range(first, first + 100)))
        print(f"\n[long conversation] {COUNT} messages sent in {time.monotonic() - started:.1f} s")
        await eventually(lambda: sum(len(seen) for seen in alice.inbox.values()) == COUNT,
                         f"all {COUNT} messages pushed to Alice's device", timeout=30)
        await alice.ack_all()
        await alice.close()

        page = await open_page()
        await page.evaluate(f"() => localStorage.setItem('parley.device', '{DEVICE}')")
        await page.evaluate(LONG_TASKS)
        await log_in(page, alice.username)
        started = time.monotonic()
        await open_chat_with(page, bob.username)
        messages = by_id(page, "message")
        await expect(messages.last).to_contain_text(f"message {COUNT - 1:04d}", timeout=15_000)
        print(f"[long conversation] opened, newest page shown in {time.monotonic() - started:.2f} s")

        # Scroll to the top again and again: each time the next older page comes.
        started = time.monotonic()
        older = by_id(page, "load-older")
        pages = 0
        while await older.is_visible():
            shown = await messages.count()
            await page.evaluate("() => { const l = document.getElementById('message-list'); l.scrollTop = 0;"
                                " l.dispatchEvent(new Event('scroll')); }")
            await page.wait_for_function(
                f"() => document.querySelectorAll('[data-testid=message]').length > {shown}"
                " || document.getElementById('load-older').hidden", timeout=15_000)
            pages += 1
            assert pages < 60, "paging did not end"
        assert pages >= COUNT // 200, f"only {pages} pages: the messages did not come from history"
        await expect(messages).to_have_count(COUNT)
        await expect(messages.first).to_contain_text("message 0000")
        texts = await page.eval_on_selector_all("[data-testid=message-text]", "els => els.map(e => e.textContent)")
        assert texts == [f"message {i:04d}" for i in range(COUNT)]
        print(f"[long conversation] scrolled up through {pages} pages to all {COUNT} in {time.monotonic() - started:.2f} s;"
              f" longest task {await page.evaluate('() => window.__longest'):.0f} ms")

        # An edit of the oldest message: its bubble changes, nothing else in the list does.
        first = await bob.call("history.fetch", {"conversation_id": (await bob.call("conversations.list"))["conversations"][0]["conversation_id"], "limit": 1, "before_seq": 2})
        oldest = first["messages"][0]
        await page.evaluate(WATCH_EDIT, [oldest["seq"], "message 0000, edited"])
        started = time.monotonic()
        await bob.call("message.edit", {"message_id": oldest["message_id"], "text": "message 0000, edited"})
        seen = await page.evaluate(EDIT_SEEN)
        assert seen is not None, "the edit of the oldest message was not drawn within 15 s"
        print(f"[long conversation] edit pushed and drawn in {(time.monotonic() - started) * 1000:.0f} ms"
              f" (page side {seen['ms']:.0f} ms), other nodes touched: {len(seen['outside'])}")
        assert seen["outside"] == [], f"an edit of one message changed others: {seen['outside'][:5]}"
        assert seen["count"] == COUNT
        await expect(messages.first.get_by_test_id("edited")).to_be_visible()

        # The page answers at once: a reaction on a message in the middle shows its chip.
        middle = messages.nth(COUNT // 2)
        started = time.monotonic()
        await middle.hover()
        await middle.get_by_test_id("action-react").click()
        await middle.locator('[data-testid="emoji-option"][data-emoji="❤️"]').click()
        await expect(middle.get_by_test_id("reaction")).to_have_count(1, timeout=10_000)
        print(f"[long conversation] hover, react and chip shown in {(time.monotonic() - started) * 1000:.0f} ms;"
              f" longest task overall {await page.evaluate('() => window.__longest'):.0f} ms")
        await expect(messages).to_have_count(COUNT)
    finally:
        await alice.close()
        if bob is not None:
            await bob.close()
