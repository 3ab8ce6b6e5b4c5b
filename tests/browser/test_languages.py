"""The web client in Simplified Chinese and English (js/i18n.js, js/locales/): a browser whose
language is Chinese gets the whole page in Chinese, the switch in the profile changes it at once
and is remembered, errors from the server are said in the language shown, and times are
formatted by Intl for it. `make screenshots` saves the main chat view in both languages.
"""
import re

from playwright.async_api import Page, expect

from tests.browser.test_web_client import PASSWORD, by_id, contact, message, unique

# Latin words a Chinese page may show: the product's name, and the language switch's own names.
ALLOWED_LATIN = {"Parley", "English"}
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")

# Every text node the user can see (inside a visible element, not in a <select>'s option list).
VISIBLE_TEXTS = """(root) => {
  const texts = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    const text = node.textContent.trim();
    if (!text || !el || el.closest("select, script, style, noscript")) continue;
    if (el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) texts.push(text);
  }
  for (const el of root.querySelectorAll("[placeholder], [aria-label], [title]")) {
    if (!el.checkVisibility()) continue;
    for (const name of ["placeholder", "aria-label", "title"]) {
      const value = el.getAttribute(name);
      if (value) texts.push(value);
    }
  }
  return texts;
}"""


async def english_left(page: Page, *names: str) -> list[str]:
    """The visible texts of `page` that still have Latin words, user names and handles aside."""
    texts = await page.locator("body").evaluate(VISIBLE_TEXTS)
    found = []
    for text in texts:
        rest = text
        for name in names:
            rest = rest.replace(name, "")
        words = set(LATIN_WORD.findall(rest)) - ALLOWED_LATIN
        if words:
            found.append(text)
    return found


async def sign_up(page: Page, username: str) -> None:
    """Create an account and land on the main screen, connected (in any language)."""
    await by_id(page, "auth-username").fill(username)
    await by_id(page, "auth-password").fill(PASSWORD)
    await by_id(page, "auth-register").click()
    await expect(by_id(page, "me")).to_have_text(username, timeout=15_000)
    await expect(by_id(page, "connection-status")).to_have_attribute("data-state", "connected", timeout=15_000)


async def befriend(asker: Page, asked: Page, asked_name: str) -> None:
    await by_id(asker, "search-input").fill(asked_name)
    await by_id(asker, "search-result").filter(has_text=asked_name).get_by_test_id("add-friend").click()
    await expect(by_id(asked, "friend-request")).to_have_count(1, timeout=10_000)
    await by_id(asked, "accept-request").click()
    await expect(contact(asker, asked_name)).to_have_count(1, timeout=10_000)
    await by_id(asker, "search-input").fill("")


async def switch_language(page: Page, language: str) -> None:
    """Pick `language` ("en", "zh-CN") in the profile, then close it."""
    await by_id(page, "open-profile").click()
    await by_id(page, "language-select").select_option(language)
    await by_id(page, "profile-close").click()


async def test_a_chinese_browser_gets_the_login_page_and_a_chat_in_chinese(open_page, shoot):
    alice = await open_page(locale="zh-CN")
    await expect(alice.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(by_id(alice, "auth-login")).to_have_text("登录")
    await expect(by_id(alice, "auth-register")).to_have_text("注册")
    await expect(by_id(alice, "auth-language")).to_have_value("zh-CN")
    assert await english_left(alice) == []

    bob = await open_page()  # an English browser: each page speaks its own user's language
    a, b = unique("alice"), unique("bob")
    await sign_up(alice, a)
    await sign_up(bob, b)
    await expect(by_id(alice, "connection-status")).to_have_text("已连接")
    await expect(by_id(bob, "connection-status")).to_have_text("Connected")
    await befriend(alice, bob, b)
    await contact(alice, b).click()
    await by_id(alice, "composer-input").fill("周末一起去爬山吗？")
    await by_id(alice, "composer-input").press("Enter")
    await by_id(bob, "conversation").filter(has_text=a).click()
    await expect(message(bob, "周末一起去爬山吗？")).to_have_count(1, timeout=10_000)
    await by_id(bob, "composer-input").press_sequentially("好", delay=30)
    await expect(by_id(alice, "typing-indicator")).to_have_text(f"{b} 正在输入…", timeout=10_000)
    await by_id(bob, "composer-input").fill("好啊，几点出发？")
    await by_id(bob, "composer-input").press("Enter")
    await expect(message(alice, "好啊，几点出发？")).to_have_count(1, timeout=10_000)
    mine = message(alice, "周末一起去爬山吗？")
    await expect(mine.get_by_test_id("receipt")).to_have_text("✓✓ 已读", timeout=10_000)

    # Chinese everywhere the user looks; the English side stays English.
    await expect(by_id(alice, "composer-input")).to_have_attribute("placeholder", "发消息…")
    await expect(by_id(alice, "send-button")).to_have_text("发送")
    await expect(alice.locator("#chats-title")).to_have_text("聊天")
    await expect(alice.locator("#contacts-title")).to_have_text("联系人")
    assert await english_left(alice, a, b) == []
    await expect(by_id(bob, "send-button")).to_have_text("Send")
    await shoot(alice, "chat-zh-CN")

    # The emoji picker: categories and names in Chinese, and a search by a Chinese name.
    await by_id(alice, "emoji-button").click()
    picker = by_id(alice, "emoji-panel")
    await expect(picker.locator('[data-testid="emoji-tab"][data-category="smileys"]')).to_have_attribute("title", "笑脸与情感")
    await expect(picker.locator('[data-testid="emoji-choice"][data-emoji="😂"]').first).to_have_attribute("aria-label", "笑哭了")
    await by_id(alice, "emoji-search").fill("笑哭")
    await expect(by_id(alice, "emoji-results").get_by_test_id("emoji-choice")).to_have_count(1)
    await expect(by_id(alice, "emoji-results")).to_contain_text("“笑哭”的搜索结果")
    await by_id(alice, "emoji-search").press("Escape")

    # The same view in English, switched in the profile: the screenshot pair of the README.
    await switch_language(alice, "en")
    await expect(mine.get_by_test_id("receipt")).to_have_text("✓✓ Read")
    await expect(alice.locator("html")).to_have_attribute("lang", "en")
    await shoot(alice, "chat-en")


async def test_the_switch_in_the_profile_changes_the_page_at_once_and_survives_a_reload(open_page):
    page = await open_page()
    name = unique("carol")
    await sign_up(page, name)
    await expect(by_id(page, "logout")).to_have_text("Log out")
    await page.evaluate("() => { window.notReloaded = true; }")
    await by_id(page, "open-profile").click()
    await expect(by_id(page, "language-select")).to_have_value("en")
    await by_id(page, "language-select").select_option("zh-CN")

    # At once, no reload: the open dialog, the page behind it, the document's language.
    await expect(page.locator("#profile-title")).to_have_text("个人资料")
    await expect(by_id(page, "profile-save")).to_have_text("保存")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await by_id(page, "profile-close").click()
    await expect(by_id(page, "logout")).to_have_text("退出登录")
    await expect(by_id(page, "connection-status")).to_have_text("已连接")
    await expect(by_id(page, "search-input")).to_have_attribute("placeholder", "搜索用户…")
    assert await english_left(page, name) == []
    assert await page.evaluate("() => window.notReloaded === true")

    # Remembered: a reload (the browser still says English) comes back in Chinese.
    await page.reload()
    await expect(by_id(page, "connection-status")).to_have_attribute("data-state", "connected", timeout=15_000)
    await expect(by_id(page, "logout")).to_have_text("退出登录")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await switch_language(page, "en")
    await expect(by_id(page, "logout")).to_have_text("Log out")
    await expect(by_id(page, "connection-status")).to_have_text("Connected")


async def test_errors_from_the_server_are_said_in_the_language_shown(open_page):
    page = await open_page(locale="zh-CN")
    taken = unique("dave")
    await sign_up(page, taken)

    # not_found on groups.invites.preview: an invite code the server does not know.
    await by_id(page, "join-group").click()
    await by_id(page, "join-code-input").fill("nosuchcode123")
    await by_id(page, "join-lookup").click()
    await expect(by_id(page, "join-error")).to_have_text("该邀请链接无效。", timeout=10_000)
    await by_id(page, "join-cancel").click()
    await by_id(page, "logout").click()

    # unauthorized on auth.login, conflict on auth.register: words from the code, in Chinese.
    await by_id(page, "auth-username").fill(taken)
    await by_id(page, "auth-password").fill("not the password")
    await by_id(page, "auth-login").click()
    await expect(by_id(page, "auth-error")).to_have_text("用户名或密码错误。", timeout=10_000)
    await by_id(page, "auth-password").fill(PASSWORD)
    await by_id(page, "auth-register").click()
    await expect(by_id(page, "auth-error")).to_have_text("该用户名已被占用，请换一个。", timeout=10_000)

    # The language switch on the login screen rewords the error shown.
    await by_id(page, "auth-language").select_option("en")
    await expect(by_id(page, "auth-error")).to_have_text("That username is already taken. Please pick another one.")
    await by_id(page, "auth-language").select_option("zh-CN")

    # What the server's message adds is read and said in Chinese: how long to wait, the field.
    said = await page.evaluate("""async () => {
      const { describe } = await import("/app/js/errors.js");
      return [
        describe({ code: "rate_limited", message: "too many failed logins; retry in 180 s" }, "auth.login"),
        describe({ code: "bad_request", message: "data.username: String should have at least 3 characters" }, "auth.register"),
        describe({ code: "internal", message: "boom" }, "message.send"),
      ];
    }""")
    assert said == ["登录尝试次数过多。请 180 秒后再试。", "用户名：至少需要 3 个字符。", "服务器出错了，请重试。"]


async def test_times_are_formatted_by_intl_for_the_language(open_page):
    alice, bob = await open_page(locale="zh-CN"), await open_page()
    a, b = unique("erin"), unique("finn")
    await sign_up(alice, a)
    await sign_up(bob, b)
    await befriend(alice, bob, b)
    await contact(alice, b).click()
    await by_id(alice, "composer-input").fill("几点了？")
    await by_id(alice, "composer-input").press("Enter")
    when = message(alice, "几点了？").locator("time.when")
    await expect(when).to_have_attribute("datetime", re.compile(r"^\d{4}-"), timeout=10_000)
    want = await when.evaluate("""(el) => {
      const at = new Date(el.getAttribute("datetime"));
      return {
        text: new Intl.DateTimeFormat("zh-CN", { hour: "2-digit", minute: "2-digit" }).format(at),
        title: new Intl.DateTimeFormat("zh-CN", { dateStyle: "medium", timeStyle: "short" }).format(at),
      };
    }""")
    await expect(when).to_have_text(want["text"])
    await expect(when).to_have_attribute("title", want["title"])
    assert "年" in want["title"]  # a Chinese date: 2026年12月7日 …

    # Relative time, by Intl.RelativeTimeFormat: Bob leaves, Alice's list says when he was last seen.
    await bob.close()
    seen = contact(alice, b).get_by_test_id("last-seen")
    await expect(seen).to_have_text(re.compile(r"^(刚刚|\d+分钟前)在线$"), timeout=15_000)
