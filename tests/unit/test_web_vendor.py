"""The web client's third-party files for end-to-end encryption (docs/security.md "The web
client"): libolm and a QR encoder pinned by npm's lock file with integrity hashes, fetched by
`make web-vendor` (called by `make run` and `make test`) and by the gateway image, a clear
failure without npm, the page's CSP allowing WebAssembly and nothing more, and the served files
in the service worker's shell when they are there.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from services.gateway.web_routes import WEB_DIR, Shell, content_security_policy

ROOT = WEB_DIR.parents[2]
VENDOR = WEB_DIR / "vendor"


def test_the_npm_packages_are_pinned_with_integrity_hashes() -> None:
    wanted = json.loads((VENDOR / "package.json").read_text())["dependencies"]
    assert wanted == {"@matrix-org/olm": "3.2.15", "qrcode-generator": "2.0.4"}, "exact versions, no ranges"
    lock = json.loads((VENDOR / "package-lock.json").read_text())
    for name, version in wanted.items():
        entry = lock["packages"][f"node_modules/{name}"]
        assert entry["version"] == version
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", entry["integrity"]), name
    ignored = (VENDOR / ".gitignore").read_text().split()
    assert "node_modules/" in ignored and "dist/" in ignored, "fetched, never committed"


def test_make_run_test_and_the_gateway_image_fetch_them() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test"):
        (line,) = [line for line in makefile.splitlines() if line.startswith(f"{target}:")]
        assert "web-vendor" in line.split(), line
    assert "deploy/local/web-vendor.sh" in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "RUN bash deploy/local/web-vendor.sh" in dockerfile
    assert "!deploy/local/web-vendor.sh" in (ROOT / ".dockerignore").read_text()


def test_without_npm_the_fetch_fails_saying_how_to_get_it(tmp_path: Path) -> None:
    script = tmp_path / "deploy" / "local" / "web-vendor.sh"
    script.parent.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "local" / "web-vendor.sh", script)
    vendor = tmp_path / "services" / "gateway" / "web" / "vendor"
    vendor.mkdir(parents=True)
    shutil.copy(VENDOR / "package-lock.json", vendor / "package-lock.json")
    tools = tmp_path / "bin"  # a PATH with the script's tools and no npm
    tools.mkdir()
    for tool in ("bash", "sha256sum", "cut", "cat", "dirname"):
        found = shutil.which(tool)
        assert found is not None
        os.symlink(found, tools / tool)
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, env={"PATH": str(tools)})
    assert result.returncode != 0
    assert "npm is not installed" in result.stderr and "make web-vendor" in result.stderr, result.stderr


def test_the_page_may_compile_webassembly_and_run_nothing_else() -> None:
    policy = content_security_policy("127.0.0.1:8000")
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert "unsafe-eval'" not in policy.replace("'wasm-unsafe-eval'", "")
    assert "http" not in directives["script-src"]


def test_the_shell_holds_the_vendor_files_when_they_are_there(tmp_path: Path) -> None:
    (tmp_path / "sw.js").write_text("// worker\n")
    (tmp_path / "index.html").write_text("<!doctype html>")
    dist = tmp_path / "vendor" / "dist"
    dist.mkdir(parents=True)
    for name in ("olm.js", "olm.wasm", "qrcode.mjs"):
        (dist / name).write_bytes(b"x")
    (tmp_path / "vendor" / "package.json").write_text("{}")
    worker = Shell(tmp_path).worker()
    files = json.loads(worker.split("const SHELL_FILES = ", 1)[1].split(";\n", 1)[0])
    for name in ("olm.js", "olm.wasm", "qrcode.mjs"):
        assert f"/app/vendor/dist/{name}" in files
    assert "/app/vendor/package.json" not in files
