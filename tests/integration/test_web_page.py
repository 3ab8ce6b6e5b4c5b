"""The web client is served by the gateway itself: `GET /` is the page, every file it loads
(scripts, the modules they import, styles, icon) comes from the gateway with the right type,
and the Content-Security-Policy keeps anything else (a CDN) out.
"""
import re
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx
import pytest

from tests.support.client import Client, new_user

# `import ... from "./x.js"`, `export ... from "./x.js"`, `import("./x.js")`, `import "./x.js"`.
MODULE_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']""")
EXPECTED_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".html": "text/html",
}


class References(HTMLParser):
    """The URLs a page makes the browser load: scripts, stylesheets, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("script", "img", "audio", "video", "source") and found.get("src"):
            self.urls.append(found["src"] or "")
        if tag == "link" and found.get("href"):
            self.urls.append(found["href"] or "")


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def expected_type(url: str) -> str:
    for suffix, content_type in EXPECTED_TYPES.items():
        if url.split("?")[0].endswith(suffix):
            return content_type
    raise AssertionError(f"the page loads {url}, of a kind this test does not know")


@pytest.fixture
def base(port: int) -> str:
    return f"http://127.0.0.1:{port}"


async def test_the_page_is_served_with_a_policy_that_only_allows_the_gateway(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        page = await http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Parley</title>" in page.text
    policy = directives(page.headers["content-security-policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    # Downloaded images and media are shown from blob: URLs; the socket goes back to this host only.
    assert set(policy["img-src"]) == {"'self'", "blob:"}
    assert set(policy["media-src"]) == {"'self'", "blob:"}
    host = base.removeprefix("http://")
    assert set(policy["connect-src"]) == {"'self'", f"ws://{host}", f"wss://{host}"}


async def test_a_forged_host_header_does_not_reach_the_policy(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        page = await http.get("/", headers={"Host": "evil.example; script-src *"})
    assert page.status_code == 200
    assert directives(page.headers["content-security-policy"])["connect-src"] == ["'self'"]


async def test_every_file_the_page_loads_is_served_from_the_gateway(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        page = await http.get("/")
        parser = References()
        parser.feed(page.text)
        assert parser.urls, "the page loads nothing"
        queue = [urljoin(base + "/", url) for url in parser.urls]
        seen: set[str] = set()
        while queue:
            url = queue.pop()
            if url in seen:
                continue
            seen.add(url)
            assert url.startswith(base + "/"), f"{url} is not on the gateway"
            got = await http.get(url)
            assert got.status_code == 200, url
            assert got.headers["content-type"].startswith(expected_type(url)), (url, got.headers["content-type"])
            assert got.headers["x-content-type-options"] == "nosniff"
            if url.endswith(".js"):
                queue += [urljoin(url, spec) for spec in MODULE_IMPORT.findall(got.text)]
    modules = [url for url in seen if url.endswith(".js")]
    assert len(modules) > 1, "the entry module imports the others"
    assert any(url.endswith(".css") for url in seen)


async def test_unknown_assets_are_404_and_the_api_is_unchanged(base: str, port: int) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/app/js/nope.js")).status_code == 404
        assert (await http.get("/app/../app.py")).status_code == 404
        assert (await http.get("/healthz")).status_code == 200
    # The socket beside the page still speaks the protocol.
    client: Client = await new_user(port)
    try:
        assert await client.call("ping") == {}
    finally:
        await client.close()
