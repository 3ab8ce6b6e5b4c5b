"""The deployment checks (docker-compose.yml, deploy/) read files and run local parsers; they
need neither RabbitMQ, Redis nor MongoDB, so the session-wide cleanup of the root conftest
(which connects to them) is turned off for this directory.

A check skipped because a tool is missing (docker-compose, nginx) is named at the end of the
run, loudly, as the browser tests do for Chromium.
"""
from collections.abc import Iterator

import pytest

SKIPPED_FOR_MISSING_TOOLS: dict[str, str] = {}


@pytest.fixture(scope="session", autouse=True)
def _remove_traces() -> Iterator[None]:
    """Overrides tests/conftest.py's: nothing here leaves traces in RabbitMQ, Redis or MongoDB."""
    yield


def skip_for_missing(tool: str, how: str) -> None:
    SKIPPED_FOR_MISSING_TOOLS[tool] = how
    pytest.skip(f"NO {tool.upper()}: {how}")


def pytest_terminal_summary(terminalreporter) -> None:
    for tool, how in SKIPPED_FOR_MISSING_TOOLS.items():
        terminalreporter.write_sep("#", f"DEPLOYMENT CHECK SKIPPED: NO {tool.upper()}", red=True, bold=True)
        terminalreporter.write_line(how)
