"""The web client's HTTP surface: the page at /app/ (its home, the scope of the installed app),
its files below /app/, the web app manifest and the service worker (services/gateway/web/sw.js).

The service worker is served with its app shell's list and version written in front of it: the
version is a hash of the shell's files, so any change to them changes the worker's bytes, the
browser installs the new worker, and it fetches the new shell into a new cache (the old one is
deleted once it takes over). The hash is recomputed only when a file's size or mtime changed.
"""
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

# The web client (services/gateway/web): plain files, no build step, found beside this module
# in a source checkout and in an editable install alike.
WEB_DIR = Path(__file__).resolve().parent / "web"
WEB_PREFIX = "/app"
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")

# The page and its files: revalidated on every load, never sniffed as another type.
WEB_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
MANIFEST_TYPE = "application/manifest+json"

# What the service worker keeps for offline use (relative to WEB_DIR; "" is the page at /app/).
SHELL_GLOBS = ("index.html", "style.css", "icon.svg", "manifest.webmanifest", "icons/*.png",
               "js/*.js", "js/*/*.js", "stickers/*.svg", "vendor/dist/*.js", "vendor/dist/*.mjs", "vendor/dist/*.wasm")


def content_security_policy(host: str | None) -> str:
    """Everything the page loads comes from the gateway itself (no CDN can inject code; avatars
    and stickers are its own /images/ and /app/stickers/), blob: only for the images and media it
    downloads with its token, and its WebSocket back to the same host (named explicitly: older
    browsers do not let 'self' cover ws:). Its service worker and manifest are the gateway's too.
    'wasm-unsafe-eval' lets the page compile WebAssembly (libolm's olm.wasm, end-to-end encryption,
    docs/security.md), and only that: no eval() of strings, and still nothing from elsewhere."""
    sockets = f" ws://{host} wss://{host}" if host and _HOST.match(host) else ""
    return (
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' blob:; "
        f"media-src 'self' blob:; connect-src 'self'{sockets}; worker-src 'self'; manifest-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


class WebAssets(StaticFiles):
    """The page's scripts and styles, revalidated on every load so a restarted gateway's new
    code is picked up at once (ETag makes that a 304 when nothing changed)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(WEB_HEADERS)
        if str(args[0] if args else kwargs.get("full_path", "")).endswith(".webmanifest"):
            response.headers["content-type"] = MANIFEST_TYPE
        return response


class Shell:
    """The app shell's URLs and their version (a hash of their contents), kept until a file of
    the shell is added, removed or changed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._signature: tuple[tuple[str, int, int], ...] = ()
        self._worker = ""

    def files(self) -> list[Path]:
        found = {path for pattern in SHELL_GLOBS for path in self.root.glob(pattern) if path.is_file()}
        return sorted(found)

    def worker(self) -> str:
        """sw.js with `SHELL_VERSION` and `SHELL_FILES` defined in front of it."""
        files = self.files()
        signature = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in [*files, self.root / "sw.js"])
        if signature != self._signature:
            digest = hashlib.sha256()
            for path in [*files, self.root / "sw.js"]:
                digest.update(path.relative_to(self.root).as_posix().encode() + b"\0" + path.read_bytes())
            urls = [f"{WEB_PREFIX}/"] + [f"{WEB_PREFIX}/{p.relative_to(self.root).as_posix()}" for p in files
                                         if p.name != "index.html"]
            self._worker = (
                f"const SHELL_VERSION = {json.dumps(digest.hexdigest()[:16])};\n"
                f"const SHELL_FILES = {json.dumps(urls)};\n"
                + (self.root / "sw.js").read_text(encoding="utf-8")
            )
            self._signature = signature
        return self._worker


def add_web_routes(app: FastAPI) -> None:
    """The page at /app/ ("/" sends there, keeping the query; the browser keeps the #fragment of
    invite links), its service worker, and its files (mounted last: the routes above win)."""
    shell = Shell(WEB_DIR)

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> RedirectResponse:
        query = request.url.query
        return RedirectResponse(f"{WEB_PREFIX}/" + (f"?{query}" if query else ""), status_code=302)

    @app.get(f"{WEB_PREFIX}/", include_in_schema=False)
    async def web_client(request: Request) -> FileResponse:
        headers = {
            **WEB_HEADERS,
            "Content-Security-Policy": content_security_policy(request.headers.get("host")),
            "Referrer-Policy": "no-referrer",
        }
        return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8", headers=headers)

    @app.get(f"{WEB_PREFIX}/sw.js", include_in_schema=False)
    def service_worker() -> Response:  # sync: reads files, so FastAPI runs it in its thread pool
        # At /app/sw.js its scope is /app/ without a Service-Worker-Allowed header.
        if not (WEB_DIR / "sw.js").is_file():
            return Response(status_code=404)
        return Response(shell.worker(), media_type="text/javascript; charset=utf-8", headers=WEB_HEADERS)

    # check_dir=False: without the page's files (an install that left them out) the API still runs.
    app.mount(WEB_PREFIX, WebAssets(directory=WEB_DIR, check_dir=False), name="web")
