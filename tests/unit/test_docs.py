"""docs/asyncapi.json and docs/protocol.md are generated from the models and cannot drift.

- the committed files equal what `python -m docs.generate.asyncapi` produces now;
- every operation and push that PROTOCOL.md names is in the AsyncAPI document;
- the document holds together as AsyncAPI 3 (every `$ref` resolves, operations point at their
  channel's messages), and validates against the AsyncAPI 3.0.0 JSON Schema when one is given.
"""
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from docs.generate import asyncapi, reference
from shared.contracts.operations import CLIENT_OPERATIONS, EVENTS, OPERATIONS, PUSHES

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_MD = Path(__file__).resolve().parents[3] / "shared" / "PROTOCOL.md"
STANDALONE_PUSHES = {
    "message.new",
    "sync.done",
    "presence",
    "typing",
    "receipt.read",
    "message.recalled",
    "group.added",
    "group.member_joined",
    "group.member_left",
    "friend.request",
    "friend.accepted",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi.build_document()


# --- (a) no drift ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [asyncapi.ASYNCAPI_PATH, asyncapi.PROTOCOL_PATH], ids=str)
def test_committed_docs_are_generated_from_the_models(path: Path) -> None:
    expected = asyncapi.generated_files(ROOT)[path]
    target = ROOT / path
    assert target.exists(), f"{path} is missing: run `make docs` (python -m docs.generate.asyncapi)"
    assert target.read_text(encoding="utf-8") == expected, (
        f"{path} is stale: the models in shared/contracts/ changed; run `make docs` "
        "(python -m docs.generate.asyncapi) and commit the result"
    )


def test_generation_is_deterministic() -> None:
    assert asyncapi.render_asyncapi(asyncapi.build_document()) == asyncapi.render_asyncapi(
        asyncapi.build_document()
    )


def test_regenerating_keeps_the_hand_written_part_and_one_generated_section(document: dict[str, Any]) -> None:
    block = asyncapi.render_reference(document)
    hand_written = "# Title\n\nSome text.\n"
    once = reference.with_reference(hand_written, block)
    assert once.startswith(hand_written)
    assert reference.with_reference(once, block) == once
    assert once.count(reference.BEGIN_MARK) == 1 and once.rstrip("\n").endswith(reference.END_MARK)
    # a stale section is replaced, not appended to
    stale = reference.with_reference(hand_written, reference.BEGIN_MARK + "\nold\n" + reference.END_MARK + "\n")
    assert reference.with_reference(stale, block) == once


def test_check_names_the_stale_file_and_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / asyncapi.PROTOCOL_PATH).write_text((ROOT / asyncapi.PROTOCOL_PATH).read_text(encoding="utf-8"))
    assert asyncapi.main([], root=tmp_path) == 0
    assert asyncapi.main(["--check"], root=tmp_path) == 0

    stale = json.loads((tmp_path / asyncapi.ASYNCAPI_PATH).read_text())
    stale["info"]["version"] = "0"
    (tmp_path / asyncapi.ASYNCAPI_PATH).write_text(json.dumps(stale))
    capsys.readouterr()
    assert asyncapi.main(["--check"], root=tmp_path) == 1
    err = capsys.readouterr().err
    assert str(asyncapi.ASYNCAPI_PATH) in err and "make docs" in err
    assert str(asyncapi.PROTOCOL_PATH) not in err


# --- (b) PROTOCOL.md's names are all there ---------------------------------------------------------
def protocol_names(text: str) -> tuple[set[str], set[str]]:
    """(operations in the first column of PROTOCOL.md's operation tables, pushes it names)."""
    operations: set[str] = set()
    in_operation_table = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_operation_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "operation":
            in_operation_table = True
        elif in_operation_table and (match := re.fullmatch(r"`([^`]+)`", cells[0])):
            operations.add(match.group(1))
    pushes = set(re.findall(r"push `([a-z_]+(?:\.[a-z_]+)*)", text))
    return operations, pushes | STANDALONE_PUSHES


def test_protocol_names_are_parsed() -> None:
    text = (
        "| operation | data | reply data |\n|---|---|---|\n| `a.b` | `x` | `{}`; push `c.d {user}` |\n\n"
        "| code | meaning |\n|---|---|\n| `1012` | restart |\n"
        "friend gets push `presence {user_id}`.\n"
    )
    operations, pushes = protocol_names(text)
    assert operations == {"a.b"}
    assert {"c.d", "presence"} <= pushes


def test_every_protocol_operation_and_push_is_in_the_document(document: dict[str, Any]) -> None:
    if not PROTOCOL_MD.exists():
        pytest.skip(f"{PROTOCOL_MD} is absent (a clone without the reference shared/ folder beside it)")
    operations, pushes = protocol_names(PROTOCOL_MD.read_text(encoding="utf-8"))
    assert len(operations) >= 20, f"too few operations parsed from PROTOCOL.md: {sorted(operations)}"

    ws = document["channels"]["ws"]["messages"]
    missing_ops = sorted(
        op for op in operations if f"request.{op}" not in document["operations"] or f"request.{op}" not in ws
    )
    assert not missing_ops, f"PROTOCOL.md operations missing from the AsyncAPI document: {missing_ops}"
    missing_pushes = sorted(p for p in pushes if f"push.{p}" not in document["operations"] or f"push.{p}" not in ws)
    assert not missing_pushes, f"PROTOCOL.md pushes missing from the AsyncAPI document: {missing_pushes}"


def test_document_covers_the_operations_table(document: dict[str, Any]) -> None:
    ops = document["operations"]
    assert {k for k in ops if k.startswith("request.")} == {f"request.{n}" for n in CLIENT_OPERATIONS}
    assert {k for k in ops if k.startswith("command.")} == {f"command.{n}" for n in OPERATIONS}
    assert {k for k in ops if k.startswith("push.")} == {f"push.{p}" for p in PUSHES}
    assert {k for k in ops if k.startswith("event.")} == {f"event.{e}" for e in EVENTS}
    for name, op in OPERATIONS.items():
        message = document["components"]["messages"][f"command.{name}"]
        assert message["x-parley-routing-key"] == op.routing_key
        assert message["x-parley-internal"] is (not op.public)
        assert ops[f"command.{name}"]["bindings"]["amqp"]["cc"] == [op.routing_key]


# --- (c) structurally valid AsyncAPI 3 -------------------------------------------------------------
def refs(node: Any, path: str = "#") -> list[tuple[str, str]]:
    """Every (`$ref` value, where it is) in the document."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.append((node["$ref"], path))
        for key, value in node.items():
            found += refs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += refs(value, f"{path}/{i}")
    return found


def test_every_ref_resolves_inside_the_document(document: dict[str, Any]) -> None:
    all_refs = refs(document)
    assert all_refs
    broken = []
    for ref, where in all_refs:
        try:
            reference.resolve_pointer(document, ref)
        except (KeyError, IndexError, ValueError, TypeError):
            broken.append(f"{where}: {ref}")
    assert not broken, "unresolved $refs:\n" + "\n".join(broken)


def test_document_has_the_asyncapi_3_shape(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "Parley" and document["info"]["version"] == "1"
    assert document["servers"]["gateway"] == {
        **document["servers"]["gateway"],
        "host": "127.0.0.1:8000",
        "protocol": "ws",
        "pathname": "/ws",
    }
    assert document["servers"]["broker"]["host"] == "127.0.0.1:5672"
    assert document["servers"]["broker"]["protocol"] == "amqp"
    assert document["channels"]["ws"]["address"] == "/ws"
    assert {"parley.commands", "parley.deliver", "parley.events"} <= set(document["channels"])

    component_key = re.compile(r"^[\w\d.\-_]+$")
    for section, entries in document["components"].items():
        bad = [k for k in entries if not component_key.match(k)]
        assert not bad, f"components.{section} keys not allowed by AsyncAPI: {bad}"

    for name, channel in document["channels"].items():
        for server in channel.get("servers", []):
            assert server["$ref"].startswith("#/servers/"), (name, server)
        for key, message in channel["messages"].items():
            assert "payload" in reference.resolve_pointer(document, message["$ref"]), (name, key)

    for name, op in document["operations"].items():
        assert op["action"] in ("send", "receive"), name
        channel_ref = op["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/"), name
        assert op["messages"], name
        # An operation's messages MUST be a subset of its channel's (AsyncAPI 3.0.0, Operation Object).
        for message in op["messages"]:
            assert message["$ref"].startswith(channel_ref + "/messages/"), (name, message)
        if "reply" in op:
            reply_channel = op["reply"]["channel"]["$ref"]
            for message in op["reply"]["messages"]:
                assert message["$ref"].startswith(reply_channel + "/messages/"), (name, message)


def test_ws_payloads_match_the_envelope(document: dict[str, Any]) -> None:
    messages = document["components"]["messages"]
    for name, op in CLIENT_OPERATIONS.items():
        payload = messages[f"request.{name}"]["payload"]
        assert payload["properties"]["type"]["const"] == name
        assert payload["properties"]["data"]["$ref"].endswith(f"/{op.request.__name__}")
        if op.reply is not None:
            ok, error = messages[f"reply.{name}"]["payload"]["oneOf"]
            assert ok["properties"]["data"]["$ref"].endswith(f"/{op.reply.__name__}")
            assert ok["properties"]["ok"]["const"] is True and error["properties"]["ok"]["const"] is False
    for push_type, model in PUSHES.items():
        payload = messages[f"push.{push_type}"]["payload"]
        assert payload["properties"]["type"]["const"] == push_type
        assert payload["properties"]["data"]["$ref"].endswith(f"/{model.__name__}")


NPM_SCHEMA = (Path(__file__).resolve().parents[2] / "docs/generate/schemas/node_modules/@asyncapi/specs/schemas"
              / "3.0.0-without-$id.json")


def test_document_validates_against_the_asyncapi_json_schema(document: dict[str, Any]) -> None:
    """No PyPI package ships the AsyncAPI 3.0.0 JSON Schema: npm's @asyncapi/specs does, and
    `make doc-schemas` (run by `make test`) installs it under docs/generate/schemas.
    PARLEY_ASYNCAPI_SCHEMA points at another copy of `schemas/3.0.0-without-$id.json`.
    """
    schema_path = os.environ.get("PARLEY_ASYNCAPI_SCHEMA") or (str(NPM_SCHEMA) if NPM_SCHEMA.exists() else None)
    if not schema_path:
        pytest.skip(
            "the AsyncAPI 3.0.0 JSON Schema is not installed: `make doc-schemas` (needs npm) fetches it, or set "
            "PARLEY_ASYNCAPI_SCHEMA to @asyncapi/specs' schemas/3.0.0-without-$id.json"
        )
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed")
    schema = json.loads(Path(schema_path).read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message[:300]}" for e in errors[:20])
