"""The service worker's app shell (services/gateway/web_routes.py): its version follows the files'
contents, so a changed file makes a new worker (and a new cache) and an unchanged one does not."""
import json
import os
import re
import tomllib
from pathlib import Path

from services.gateway.web_routes import WEB_DIR, Shell


def version(worker: str) -> str:
    found = re.search(r'^const SHELL_VERSION = "([0-9a-f]{16})";$', worker, re.M)
    assert found, worker[:200]
    return found.group(1)


def files(worker: str) -> list[str]:
    found = re.search(r"^const SHELL_FILES = (.*);$", worker, re.M)
    assert found
    return list(json.loads(found.group(1)))


def a_web_dir(root: Path) -> Path:
    (root / "js" / "views").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html>")
    (root / "style.css").write_text("body {}")
    (root / "sw.js").write_text("self.addEventListener('fetch', () => {});\n")
    (root / "js" / "main.js").write_text("import './views/chat.js';")
    (root / "js" / "views" / "chat.js").write_text("export {};")
    return root


def test_the_version_changes_with_a_file_and_only_then(tmp_path: Path) -> None:
    root = a_web_dir(tmp_path)
    shell = Shell(root)
    first = shell.worker()
    assert files(first) == ["/app/", "/app/js/main.js", "/app/js/views/chat.js", "/app/style.css"]
    assert first.endswith("self.addEventListener('fetch', () => {});\n"), "the worker's own code follows"
    assert version(Shell(root).worker()) == version(first), "the same files, the same version"

    chat = root / "js" / "views" / "chat.js"
    chat.write_text("export const x = 1;")
    os.utime(chat, ns=(chat.stat().st_atime_ns, chat.stat().st_mtime_ns + 1_000_000))
    second = shell.worker()
    assert version(second) != version(first)

    (root / "js" / "new.js").write_text("export {};")
    third = shell.worker()
    assert "/app/js/new.js" in files(third) and version(third) != version(second)


def test_the_real_shell_holds_the_page_and_everything_it_loads() -> None:
    shell = files(Shell(WEB_DIR).worker())
    for url in ("/app/", "/app/style.css", "/app/js/main.js", "/app/js/i18n.js", "/app/js/locales/en.js",
                "/app/js/views/chat.js", "/app/manifest.webmanifest", "/app/icons/icon-192.png", "/app/stickers/cat.svg"):
        assert url in shell, url
    assert "/app/sw.js" not in shell and "/app/index.html" not in shell


def test_every_file_of_the_web_client_is_in_the_package_data() -> None:
    """A non-editable install (the images) has only what pyproject.toml's package data names."""
    pyproject = tomllib.loads((WEB_DIR.parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["services.gateway"]
    packaged = {path for pattern in patterns for path in WEB_DIR.parent.glob(pattern)}
    # vendor/: npm's pins and node_modules are how dist/ is made (deploy/local/web-vendor.sh), not served.
    vendor = WEB_DIR / "vendor"
    served = lambda path: path.parent != vendor and (vendor / "node_modules") not in path.parents and path.name != ".lock-sha256"  # noqa: E731
    missing = [str(path.relative_to(WEB_DIR)) for path in WEB_DIR.rglob("*") if path.is_file() and served(path) and path not in packaged]
    assert missing == []
