"""The web client's message catalogs (services/gateway/web/js/locales/): English and Simplified
Chinese have the same keys and the same {params} per key, every key the client uses exists,
every key the catalogs hold is used, every error code of the protocol has its words, and the
static text of index.html all comes from the catalogs (data-i18n attributes).

The catalogs are JavaScript modules (`export default {...}`): read here with a small reader of
object literals (strings, nested plural objects, comments, trailing commas), not with a JS engine.
"""
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from shared.contracts.errors import ErrorCode

WEB = Path(__file__).resolve().parents[2] / "services" / "gateway" / "web"
LOCALES = WEB / "js" / "locales"
PLURAL_FORMS = {"zero", "one", "two", "few", "many", "other"}
PARAM = re.compile(r"\{(\w+)\}")

Entry = str | dict[str, str]


class Reader:
    """A reader of the catalogs' JavaScript: `export default` and an object literal of strings."""

    def __init__(self, text: str, name: str):
        self.text, self.name, self.at = text, name, 0

    def fail(self, what: str) -> None:
        line = self.text.count("\n", 0, self.at) + 1
        raise AssertionError(f"{self.name}:{line}: {what}")

    def skip(self) -> None:
        while self.at < len(self.text):
            if self.text[self.at].isspace():
                self.at += 1
            elif self.text.startswith("//", self.at):
                end = self.text.find("\n", self.at)
                self.at = len(self.text) if end < 0 else end
            elif self.text.startswith("/*", self.at):
                self.at = self.text.index("*/", self.at) + 2
            else:
                return

    def peek(self) -> str:
        self.skip()
        return self.text[self.at : self.at + 1]

    def expect(self, token: str) -> None:
        self.skip()
        if not self.text.startswith(token, self.at):
            self.fail(f"expected {token!r}")
        self.at += len(token)

    def string(self) -> str:
        quote = self.peek()
        if quote not in "\"'`":
            self.fail("expected a string")
        self.at += 1
        out = []
        while self.text[self.at] != quote:
            char = self.text[self.at]
            if char == "\\":
                self.at += 1
                char = self.text[self.at]
                if char == "u":
                    char = chr(int(self.text[self.at + 1 : self.at + 5], 16))
                    self.at += 4
                else:
                    char = {"n": "\n", "t": "\t"}.get(char, char)
            elif quote == "`" and self.text.startswith("${", self.at):
                self.fail("a catalog string may not interpolate (${...}): use {params}")
            out.append(char)
            self.at += 1
        self.at += 1
        return "".join(out)

    def key(self) -> str:
        if self.peek() in "\"'":
            return self.string()
        match = re.compile(r"[A-Za-z_$][\w$]*").match(self.text, self.at)
        if not match:
            self.fail("expected a key")
        self.at = match.end()
        return match.group()

    def object(self, nested: bool = False) -> dict:
        self.expect("{")
        out: dict = {}
        while self.peek() != "}":
            key = self.key()
            if key in out:
                self.fail(f"key {key!r} twice")
            self.expect(":")
            out[key] = self.object(nested=True) if self.peek() == "{" and not nested else self.string()
            if self.peek() == ",":
                self.at += 1
        self.expect("}")
        return out

    def catalog(self) -> dict[str, Entry]:
        self.expect("export default")
        out = self.object()
        if self.peek() == ";":
            self.at += 1
        if self.peek():
            self.fail("more after the catalog")
        return out


def catalog(name: str) -> dict[str, Entry]:
    path = LOCALES / f"{name}.js"
    return Reader(path.read_text(encoding="utf-8"), path.name).catalog()


def params(entry: Entry) -> set[str]:
    texts = entry.values() if isinstance(entry, dict) else [entry]
    return {name for text in texts for name in PARAM.findall(text)}


COMMENTS = re.compile(r"/\*.*?\*/|(?:^|(?<=\s))//[^\n]*|<!--.*?-->", re.S)


def sources() -> dict[Path, str]:
    """The client's code and page, comments blanked (line numbers kept)."""
    files = [p for p in WEB.rglob("*.js") if LOCALES not in p.parents and WEB / "vendor" not in p.parents] + list(WEB.glob("*.html"))
    blank = lambda match: re.sub(r"[^\n]", " ", match.group())  # noqa: E731
    return {path: COMMENTS.sub(blank, path.read_text(encoding="utf-8")) for path in files}


USES = [
    re.compile(r"""\b(?:t|msgKey)\(\s*(["'])([^"'`]+?)\1"""),  # t("chat.send", ...), msgKey("...")
    re.compile(r"""data-i18n(?:-[a-z-]+)?["']?\s*[:=]\s*(["'])([^"']+?)\1"""),  # data-i18n="..."; {"data-i18n": "..."}
]


def used_keys() -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for path, text in sources().items():
        for pattern in USES:
            for match in pattern.finditer(text):
                used.setdefault(match.group(2), []).append(f"{path.relative_to(WEB)}:{text.count(chr(10), 0, match.start()) + 1}")
    return used


@pytest.fixture(scope="module")
def en() -> dict[str, Entry]:
    return catalog("en")


@pytest.fixture(scope="module")
def zh() -> dict[str, Entry]:
    return catalog("zh-CN")


def test_both_catalogs_have_the_same_keys(en, zh):
    assert en, "the English catalog is empty"
    assert sorted(set(en) - set(zh)) == [], "keys only in en.js"
    assert sorted(set(zh) - set(en)) == [], "keys only in zh-CN.js"


def test_each_key_has_the_same_params_in_both(en, zh):
    differ = {key: (sorted(params(en[key])), sorted(params(zh[key]))) for key in en.keys() & zh.keys()
              if params(en[key]) != params(zh[key])}
    assert differ == {}


def test_plural_entries_have_known_forms(en, zh):
    """Forms of Intl.PluralRules, `other` always there (t() picks by its `count` param)."""
    for name, entries in (("en", en), ("zh-CN", zh)):
        for key, entry in entries.items():
            if isinstance(entry, dict):
                assert set(entry) <= PLURAL_FORMS and "other" in entry, f"{name} {key}: forms {sorted(entry)}"


def test_the_chinese_is_chinese(en, zh):
    """Every Chinese entry with words in it has Chinese in it (not an English one copied over)."""
    english = [key for key, entry in zh.items()
               if not any("\u4e00" <= char <= "\u9fff" for text in (entry.values() if isinstance(entry, dict) else [entry]) for char in text)
               and re.search(r"[A-Za-z]{3}", re.sub(r"\{\w+\}|Parley|JavaScript|https?|localhost|MB|ID", "", str(entry)))]
    assert english == []


def test_every_key_the_client_uses_exists(en):
    missing = {key: places for key, places in used_keys().items() if key not in en}
    assert missing == {}


def test_every_key_in_the_catalogs_is_used(en):
    unused = sorted(set(en) - set(used_keys()))
    assert unused == [], "\n".join(unused)


def test_every_error_code_has_words(en):
    assert [code.value for code in ErrorCode if f"errors.{code.value}" not in en] == []
    errors_js = (WEB / "js" / "errors.js").read_text(encoding="utf-8")
    for code in ErrorCode:
        assert re.search(rf'\b{code.value}: \(\) => t\("errors\.{code.value}"\)', errors_js), f"errors.js GENERAL lacks {code.value}"


class VisibleText(HTMLParser):
    """Text and labelling attributes of index.html that are not marked for translation."""

    SKIP = {"script", "style", "noscript", "title", "svg", "path"}
    VOID = {"img", "input", "br", "meta", "link", "source", "option-none"}
    LABELS = ("placeholder", "title", "aria-label", "alt")
    ALLOWED = {"Parley", "←"}  # the name, an arrow

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.unmarked: list[str] = []

    def handle_starttag(self, tag, attrs):
        marks = dict(attrs)
        for name in self.LABELS:
            if marks.get(name) and f"data-i18n-{name}" not in marks and name != "alt":
                self.unmarked.append(f"<{tag}> {name}={marks[name]!r}")
            if name == "alt" and marks.get("alt"):
                self.unmarked.append(f"<{tag}> alt={marks['alt']!r}")
        if tag not in self.VOID:
            self.stack.append((tag, marks))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        text = data.strip()
        if not text or not re.search(r"\w", text) or text in self.ALLOWED:
            return
        if any(tag in self.SKIP for tag, _ in self.stack):
            return
        if not self.stack or "data-i18n" not in self.stack[-1][1]:
            self.unmarked.append(repr(text))


def test_the_static_text_of_the_page_comes_from_the_catalogs():
    page = VisibleText()
    page.feed((WEB / "index.html").read_text(encoding="utf-8"))
    assert page.unmarked == []
