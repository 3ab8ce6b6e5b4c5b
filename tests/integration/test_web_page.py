"""The web client is served by the gateway itself: `GET /` sends to the page at /app/, every file
it loads (scripts, the modules they import, styles, icons, its manifest) comes from the gateway
with the right type, the Content-Security-Policy keeps anything else (a CDN) out, and its
service worker's app shell is versioned by the files' contents.
"""
import json
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
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
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
        home = await http.get("/?relay=1")
        page = await http.get("/app/")
    assert home.status_code == 302 and home.headers["location"] == "/app/?relay=1", "/ is the app at /app/"
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Parley</title>" in page.text
    policy = directives(page.headers["content-security-policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'", "'wasm-unsafe-eval'"]  # WebAssembly (olm.wasm), no eval
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    # Downloaded images and media are shown from blob: URLs; the socket goes back to this host only.
    assert set(policy["img-src"]) == {"'self'", "blob:"}
    assert set(policy["media-src"]) == {"'self'", "blob:"}
    host = base.removeprefix("http://")
    assert set(policy["connect-src"]) == {"'self'", f"ws://{host}", f"wss://{host}"}
    # The installed app: its service worker and manifest are the gateway's own.
    assert policy["worker-src"] == ["'self'"] and policy["manifest-src"] == ["'self'"]


async def test_a_forged_host_header_does_not_reach_the_policy(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        page = await http.get("/app/", headers={"Host": "evil.example; script-src *"})
    assert page.status_code == 200
    assert directives(page.headers["content-security-policy"])["connect-src"] == ["'self'"]


async def test_every_file_the_page_loads_is_served_from_the_gateway(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, follow_redirects=True) as http:
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
    assert any(url.endswith(".webmanifest") for url in seen)


async def test_the_manifest_and_the_service_worker_make_an_installable_app(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        manifest = (await http.get("/app/manifest.webmanifest")).json()
        worker = await http.get("/app/sw.js")
        assert manifest["start_url"] == manifest["scope"] == "/app/" and manifest["display"] == "standalone"
        for icon in manifest["icons"]:
            got = await http.get(icon["src"])
            assert got.status_code == 200 and got.headers["content-type"] == icon["type"], icon
        assert {"192x192", "512x512"} <= {icon["sizes"] for icon in manifest["icons"]}
        assert any(icon.get("purpose") == "maskable" for icon in manifest["icons"])
        # At /app/sw.js, its scope covers the app; revalidated on every load like the page.
        assert worker.status_code == 200 and worker.headers["content-type"].startswith("text/javascript")
        assert worker.headers["cache-control"] == "no-cache"
        shell = json.loads(re.search(r"^const SHELL_FILES = (.*);$", worker.text, re.M).group(1))  # type: ignore[union-attr]
        assert re.search(r'^const SHELL_VERSION = "[0-9a-f]{16}";$', worker.text, re.M)
        assert {"/app/", "/app/js/main.js", "/app/style.css", "/app/manifest.webmanifest"} <= set(shell)
        for url in shell:
            assert (await http.get(url)).status_code == 200, url


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
