"""A service owns its collections and no service reads another's (DESIGN.md): the code of one
service imports nothing of another's (what it needs of another it asks over RabbitMQ), and calls,
which keeps its state in Redis, holds no MongoDB collection at all."""
import ast
from pathlib import Path

from services.calls.service import CallsService

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_service_imports_another_services_code() -> None:
    services = sorted(p.name for p in SERVICES_DIR.iterdir() if (p / "__init__.py").is_file())
    assert {"auth", "chat", "files", "calls", "gateway"} <= set(services)
    crossings = []
    for service in services:
        for path in (SERVICES_DIR / service).rglob("*.py"):
            for module in imported_modules(path):
                parts = module.split(".")
                if parts[0] == "services" and len(parts) > 1 and parts[1] != service:
                    crossings.append(f"{path.relative_to(SERVICES_DIR)} imports {module}")
    assert not crossings


def test_calls_keeps_no_collection() -> None:
    assert CallsService.uses_database is False
    for path in (SERVICES_DIR / "calls").rglob("*.py"):
        assert not {m for m in imported_modules(path) if m.startswith(("pymongo", "shared.stores"))}, path
