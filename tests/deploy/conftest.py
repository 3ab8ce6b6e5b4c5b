"""The deployment checks (docker-compose.yml, deploy/) read files and run local parsers; they
need neither RabbitMQ, Redis nor MongoDB, so the session-wide cleanup of the root conftest
(which connects to them) is turned off for this directory.

A check skipped because a tool is missing (docker-compose, nginx) is named at the end of the
run, loudly, as the browser tests do for Chromium.
"""
import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.deploy.support import ROOT

SKIPPED_FOR_MISSING_TOOLS: dict[str, str] = {}


@pytest.fixture(scope="session", autouse=True)
def _remove_traces() -> Iterator[None]:
    """Overrides tests/conftest.py's: nothing here leaves traces in RabbitMQ, Redis or MongoDB."""
    yield


def skip_for_missing(tool: str, how: str) -> None:
    SKIPPED_FOR_MISSING_TOOLS[tool] = how
    pytest.skip(f"NO {tool.upper()}: {how}")


IMAGES_TAG = "test"  # built for the run from this checkout; `make images` tags its own `local`


def engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def service_images() -> str:
    """The service images (and the MongoDB-wire stand-in) built from this checkout with
    deploy/local/build-images.sh, once a run (cached by Docker: seconds when nothing changed);
    their tag. Skipped, loudly, without a Docker engine, or without the base image and root."""
    if not engine_answers():
        skip_for_missing(
            "docker engine", "no Docker engine answers: `make images` (as root) installs Debian's docker.io, starts "
            "`dockerd --bridge=none` and builds the images; then run `make test` again",
        )
    base = subprocess.run(["docker", "image", "inspect", "parley-base:bookworm"], capture_output=True)
    if base.returncode != 0 and os.getuid() != 0:
        skip_for_missing("base image", "no parley-base:bookworm image, and making it needs root: `sudo make images`")
    started = time.monotonic()
    built = subprocess.run(
        ["bash", "deploy/local/build-images.sh"], cwd=ROOT, env={**os.environ, "PARLEY_TAG": IMAGES_TAG},
        capture_output=True, text=True, timeout=840,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    print(f"\n[images] built in {time.monotonic() - started:.0f} s:\n{built.stdout.strip()}")
    return IMAGES_TAG


def pytest_terminal_summary(terminalreporter) -> None:
    for tool, how in SKIPPED_FOR_MISSING_TOOLS.items():
        terminalreporter.write_sep("#", f"DEPLOYMENT CHECK SKIPPED: NO {tool.upper()}", red=True, bold=True)
        terminalreporter.write_line(how)
