"""Database operations per delivered message, per process, read from the services' prometheus
endpoints (shared/dbmetrics.py counts them in each process as its driver sends them).

Counted at the measured window's edges, like CPU: commands sent, documents written (inserted,
matched by an update or findAndModify, deleted) and documents read (returned by a find, getMore,
aggregate or findAndModify). The busiest (command, collection) pairs say where they go.
"""
import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass
class DbCounts:
    commands: dict[tuple[str, str], float] = field(default_factory=dict)  # (command, collection) -> count
    documents: dict[tuple[str, str], float] = field(default_factory=dict)  # (kind, collection) -> count

    def total(self, kind: str) -> float:
        return sum(n for (k, _), n in self.documents.items() if k == kind)


def parse_counts(text: str) -> DbCounts:
    counts = DbCounts()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "parley_db_commands_total":
                key = (sample.labels["command"], sample.labels["collection"])
                counts.commands[key] = counts.commands.get(key, 0.0) + sample.value
            elif sample.name == "parley_db_documents_total":
                key = (sample.labels["kind"], sample.labels["collection"])
                counts.documents[key] = counts.documents.get(key, 0.0) + sample.value
    return counts


async def db_counts(endpoints: dict[str, str]) -> dict[str, DbCounts]:
    """label -> its counts so far; a process whose endpoint does not answer is left out."""
    async with httpx.AsyncClient(timeout=5) as http:
        async def one(url: str) -> DbCounts | None:
            try:
                response = await http.get(url)
                response.raise_for_status()
            except httpx.HTTPError:
                return None
            return parse_counts(response.text)

        results = await asyncio.gather(*(one(url) for url in endpoints.values()))
    return {label: counts for label, counts in zip(endpoints, results, strict=True) if counts is not None}


def db_figures(before: dict[str, DbCounts], after: dict[str, DbCounts], delivered: int) -> dict[str, Any]:
    """Per process (and in all): commands, documents written and read per delivered message;
    and in all, per delivered message, commands by (command, collection) and documents by
    (kind, collection), busiest first."""
    if not delivered:
        return {}
    per: dict[str, dict[str, float]] = {}
    commands: dict[str, float] = {}
    documents: dict[str, float] = {}
    for label, end in after.items():
        start = before.get(label, DbCounts())
        sent = {k: v - start.commands.get(k, 0.0) for k, v in end.commands.items()}
        moved = {k: v - start.documents.get(k, 0.0) for k, v in end.documents.items()}
        row = {"commands": sum(sent.values()),
               "written": sum(n for (kind, _), n in moved.items() if kind == "written"),
               "read": sum(n for (kind, _), n in moved.items() if kind == "read")}
        if not any(row.values()):
            continue
        per[label] = row
        for (command, collection), n in sent.items():
            name = f"{command} {collection}".strip()
            commands[name] = commands.get(name, 0.0) + n
        for (kind, collection), n in moved.items():
            documents[f"{kind} {collection}"] = documents.get(f"{kind} {collection}", 0.0) + n
    per["total"] = {k: sum(row[k] for row in per.values()) for k in ("commands", "written", "read")}

    def ranked(counts: dict[str, float]) -> dict[str, float]:
        return {k: round(n / delivered, 3) for k, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n}

    return {"per_process": {label: {k: round(v / delivered, 3) for k, v in row.items()} for label, row in per.items()},
            "commands": ranked(commands), "documents": ranked(documents)}


def db_table(figures: dict[str, Any]) -> list[str]:
    if not figures:
        return ["  database operations: not counted (no metrics endpoints: a stack of the bench's own counts them)"]
    lines = [f"  {'database / msg':<14}{'commands':>10}{'written':>10}{'read':>10}"]
    for label, row in figures["per_process"].items():
        lines.append(f"  {label:<14}{row['commands']:>10.3f}{row['written']:>10.3f}{row['read']:>10.3f}")
    lines.append("  documents / msg: " + ", ".join(f"{k} {v:.3f}" for k, v in list(figures["documents"].items())[:10]))
    lines.append("  commands / msg: " + ", ".join(f"{k} {v:.3f}" for k, v in list(figures["commands"].items())[:8]))
    return lines
