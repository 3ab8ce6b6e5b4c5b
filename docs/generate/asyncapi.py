"""The AsyncAPI 3 document of Parley, and the reference section of docs/protocol.md, from the models.

`python -m docs.generate.asyncapi` writes `docs/asyncapi.json` and regenerates the generated
section at the end of `docs/protocol.md`; `--check` only compares and exits 1 when either file
is stale (`make docs` regenerates both). Everything here is derived from
`shared/contracts/operations.py` (OPERATIONS, PUSHES, EVENTS) and the pydantic models it names,
so a changed model or operation shows up as a stale document in the unit tests.

The document describes Parley as one application:
- `ws` (the gateway's WebSocket): Parley receives each client request and answers one reply on
  the same socket; it sends pushes.
- `parley.commands`: a service receives the commands bound to its routing keys; RPC commands are
  answered with a `CommandResult` on the caller's reply queue (`parley.reply.<instance>`).
- `parley.deliver`: a gateway instance receives the pushes for the sockets it holds.
- `parley.events`: services send domain events.
"""
import argparse
import copy
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.broker import Names
from docs.generate.reference import render_reference, with_reference
from shared.contracts.envelope import ClientRequest, ErrorReply, OkReply, Push
from shared.contracts.operations import EVENTS, OPERATIONS, PUSHES
from shared.contracts.wire import Command, CommandResult, Delivery

ROOT = Path(__file__).resolve().parents[2]
ASYNCAPI_PATH = Path("docs") / "asyncapi.json"
PROTOCOL_PATH = Path("docs") / "protocol.md"
REGENERATE = "make docs (or: python -m docs.generate.asyncapi)"


NAMESPACE = "parley"  # the default PARLEY_NAMESPACE
SCHEMA_REF = "#/components/schemas/{model}"
AMQP_BINDING = "0.3.0"

_ENVELOPES: tuple[type[BaseModel], ...] = (ClientRequest, OkReply, ErrorReply, Push)
_WIRE: tuple[type[BaseModel], ...] = (Command, CommandResult, Delivery)


# --- schemas -------------------------------------------------------------------------------------
def _models() -> list[type[BaseModel]]:
    """Every model the document names, once each, in a stable order."""
    found: dict[str, type[BaseModel]] = {}
    candidates: list[type[BaseModel]] = [*_ENVELOPES, *_WIRE, *PUSHES.values(), *EVENTS.values()]
    for op in OPERATIONS.values():
        candidates.append(op.request)
        if op.reply is not None:
            candidates.append(op.reply)
    for model in candidates:
        found.setdefault(f"{model.__module__}.{model.__qualname__}", model)
    return [found[key] for key in sorted(found)]


def _schemas() -> tuple[dict[type[BaseModel], str], dict[str, Any]]:
    """(model → its `$ref`, `components.schemas`): one pydantic pass, so shared `$defs` agree.

    Validation mode: it is the contract a sender must meet, and it keeps the fields of models
    with a custom serializer (`SparseContract` omits unset optional fields, nothing more).
    """
    models = _models()
    refs, top = models_json_schema([(m, "validation") for m in models], ref_template=SCHEMA_REF)
    by_model = {model: refs[(model, "validation")]["$ref"] for model in models}
    return by_model, _asyncapi_discriminators(dict(top.get("$defs", {})))


def _asyncapi_discriminators(node: Any) -> Any:
    """pydantic writes OpenAPI's `discriminator: {propertyName, mapping}`; an AsyncAPI 3.0 Schema
    Object takes the property's name only (`discriminator: "algorithm"`), each variant telling
    its own value by its `const`."""
    if isinstance(node, dict):
        out = {key: _asyncapi_discriminators(value) for key, value in node.items()}
        if isinstance(out.get("discriminator"), dict):
            out["discriminator"] = out["discriminator"]["propertyName"]
        return out
    if isinstance(node, list):
        return [_asyncapi_discriminators(item) for item in node]
    return node


def _ref(target: str) -> dict[str, str]:
    return {"$ref": target}


def _pointer(*parts: str) -> str:
    """A JSON pointer fragment (`#/a/b`), escaping `~` and `/` in each part."""
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _derive(
    base: dict[str, Any], title: str, properties: dict[str, Any], required: Iterable[str] | None = None
) -> dict[str, Any]:
    """A copy of an envelope's schema with some properties narrowed (a `type` const, a typed `data`)."""
    schema = copy.deepcopy(base)
    schema.pop("description", None)  # the envelope's own words, about an untyped `data`
    schema["title"] = title
    schema["properties"] = {**schema.get("properties", {}), **properties}
    if required is not None:
        schema["required"] = list(required)
    return schema


# --- the document --------------------------------------------------------------------------------
def build_document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every WebSocket operation and push, command and event."""
    names = Names(NAMESPACE)
    model_ref, schemas = _schemas()

    def name_of(model: type[BaseModel]) -> str:
        return model_ref[model].rsplit("/", 1)[-1]

    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    ws_messages: dict[str, Any] = {}
    command_messages: dict[str, Any] = {}

    def add_message(channel_messages: dict[str, Any], key: str, message: dict[str, Any]) -> str:
        messages[key] = message
        channel_messages[key] = _ref(_pointer("components", "messages", key))
        return key

    # -- the WebSocket: requests and their replies, pushes
    request_base, ok_base, error_base, push_base = (schemas[name_of(m)] for m in _ENVELOPES)
    error_payload = _derive(error_base, "ErrorReply", {}, ["type", "id", "ok", "error"])
    for op in sorted(OPERATIONS.values(), key=lambda o: o.name):
        if not op.public:
            continue
        request_key = add_message(
            ws_messages,
            f"request.{op.name}",
            {
                "name": op.name,
                "title": f"Request {op.name}",
                "summary": f"Client → server: `{op.name}`, answered by exactly one reply with the same `id`.",
                "payload": _derive(
                    request_base,
                    f"Request {op.name}",
                    {"type": {"const": op.name, "type": "string"}, "data": _ref(model_ref[op.request])},
                    ["type", "id"],
                ),
                "x-parley-needs-session": op.needs_session,
                "x-parley-service": op.service,
            },
        )
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": _ref(_pointer("channels", "ws")),
            "messages": [_ref(_pointer("channels", "ws", "messages", request_key))],
            "summary": f"`{op.name}`" + ("" if op.needs_session else " (accepted before login)"),
            "x-parley-needs-session": op.needs_session,
        }
        if op.reply is not None:
            ok_payload = _derive(
                ok_base,
                f"Reply to {op.name} (ok)",
                {"data": _ref(model_ref[op.reply])},
                ["type", "id", "ok", "data"],
            )
            reply_key = add_message(
                ws_messages,
                f"reply.{op.name}",
                {
                    "name": "reply",
                    "title": f"Reply to {op.name}",
                    "summary": f"Server → client: the answer to `{op.name}`, `ok` with its data or an error.",
                    "payload": {"oneOf": [ok_payload, error_payload]},
                },
            )
            operation["reply"] = {
                "channel": _ref(_pointer("channels", "ws")),
                "messages": [_ref(_pointer("channels", "ws", "messages", reply_key))],
            }
        operations[f"request.{op.name}"] = operation

    for push_type in sorted(PUSHES):
        key = add_message(
            ws_messages,
            f"push.{push_type}",
            {
                "name": push_type,
                "title": f"Push {push_type}",
                "summary": f"Server → client, unsolicited: `{push_type}`.",
                "payload": _derive(
                    push_base,
                    f"Push {push_type}",
                    {"type": {"const": push_type, "type": "string"}, "data": _ref(model_ref[PUSHES[push_type]])},
                    ["type", "data"],
                ),
            },
        )
        operations[f"push.{push_type}"] = {
            "action": "send",
            "channel": _ref(_pointer("channels", "ws")),
            "messages": [_ref(_pointer("channels", "ws", "messages", key))],
            "summary": f"Push `{push_type}` to a client's sockets.",
        }

    # -- the broker: commands (and RPC results), deliveries, events
    command_base = schemas[name_of(Command)]
    result_messages: dict[str, Any] = {}
    result_key = add_message(
        result_messages,
        "command_result",
        {
            "name": "CommandResult",
            "title": "RPC result",
            "summary": "A service's answer to an RPC command, sent to the caller's `reply_to` queue "
            "with the command's `correlation_id`.",
            "payload": _ref(model_ref[CommandResult]),
            "correlationId": {
                "description": "The AMQP `correlation_id` property, copied from the command.",
                "location": "$message.header#/correlation_id",
            },
        },
    )
    for op in sorted(OPERATIONS.values(), key=lambda o: o.name):
        key = add_message(
            command_messages,
            f"command.{op.name}",
            {
                "name": op.routing_key,
                "title": f"Command {op.routing_key}",
                "summary": f"`{op.name}` for the {op.service} service"
                + ("" if op.public else " (internal: never sent by clients)")
                + ".",
                "payload": _derive(
                    command_base,
                    f"Command {op.routing_key}",
                    {"data": _ref(model_ref[op.request])},
                ),
                "x-parley-operation": op.name,
                "x-parley-routing-key": op.routing_key,
                "x-parley-service": op.service,
                "x-parley-internal": not op.public,
                "x-parley-reply": name_of(op.reply) if op.reply is not None else None,
            },
        )
        operation = {
            "action": "receive",
            "channel": _ref(_pointer("channels", names.commands)),
            "messages": [_ref(_pointer("channels", names.commands, "messages", key))],
            "summary": f"The {op.service} service takes `{op.routing_key}`"
            + (" and answers it (RPC)." if op.reply is not None else " (one-way, no reply)."),
            "bindings": {
                "amqp": {
                    "cc": [op.routing_key],
                    "deliveryMode": 2,
                    "mandatory": True,
                    "ack": True,
                    "bindingVersion": AMQP_BINDING,
                }
            },
            "x-parley-service": op.service,
        }
        if op.reply is not None:
            operation["reply"] = {
                "address": {
                    "location": "$message.header#/reply_to",
                    "description": "The AMQP `reply_to` property: the caller's exclusive reply queue.",
                },
                "channel": _ref(_pointer("channels", "replies")),
                "messages": [_ref(_pointer("channels", "replies", "messages", result_key))],
            }
        operations[f"command.{op.name}"] = operation

    deliver_messages: dict[str, Any] = {}
    delivery_key = add_message(
        deliver_messages,
        "delivery",
        {
            "name": "Delivery",
            "title": "Delivery",
            "summary": "Pushes for sockets held by one gateway instance; routing key = its instance id.",
            "payload": _ref(model_ref[Delivery]),
        },
    )
    operations["deliver"] = {
        "action": "receive",
        "channel": _ref(_pointer("channels", names.deliver)),
        "messages": [_ref(_pointer("channels", names.deliver, "messages", delivery_key))],
        "summary": "A gateway instance takes the pushes for its sockets (transient, unacked: "
        "what is lost comes back on the next sync).",
        "bindings": {"amqp": {"deliveryMode": 1, "ack": False, "bindingVersion": AMQP_BINDING}},
    }

    event_messages: dict[str, Any] = {}
    for event in sorted(EVENTS):
        key = add_message(
            event_messages,
            f"event.{event}",
            {
                "name": event,
                "title": f"Event {event}",
                "summary": f"Domain event `{event}` (routing key `{event}`).",
                "payload": _ref(model_ref[EVENTS[event]]),
            },
        )
        operations[f"event.{event}"] = {
            "action": "send",
            "channel": _ref(_pointer("channels", names.events)),
            "messages": [_ref(_pointer("channels", names.events, "messages", key))],
            "summary": f"A service publishes `{event}`.",
            "bindings": {"amqp": {"cc": [event], "deliveryMode": 2, "bindingVersion": AMQP_BINDING}},
        }

    gateway, broker = _ref(_pointer("servers", "gateway")), _ref(_pointer("servers", "broker"))

    def exchange(name: str, kind: str) -> dict[str, Any]:
        return {
            "amqp": {
                "is": "routingKey",
                "exchange": {"name": name, "type": kind, "durable": True, "autoDelete": False, "vhost": "/"},
                "bindingVersion": AMQP_BINDING,
            }
        }

    channels = {
        "ws": {
            "address": "/ws",
            "title": "Client WebSocket",
            "description": "Text frames, each one JSON object: requests `{type, id, data}`, one reply "
            "`{type: \"reply\", id, ok, data | error}` per request, and pushes `{type, data}` "
            "(PROTOCOL.md, \"Envelope\").",
            "servers": [gateway],
            "messages": ws_messages,
            "bindings": {"ws": {"method": "GET", "bindingVersion": "0.1.0"}},
        },
        names.commands: {
            "address": names.commands,
            "title": "Commands",
            "description": "Topic exchange; routing key = operation (`auth.login`, `chat.message.send`, ...). "
            "Each service has one durable quorum queue (`" + names.service_queue("<service>") + "`) bound "
            "to its routing keys; its replicas compete on it.",
            "servers": [broker],
            "messages": command_messages,
            "bindings": exchange(names.commands, "topic"),
        },
        "replies": {
            "address": names.reply_queue("{instance_id}"),
            "title": "RPC replies",
            "description": "Each caller's exclusive reply queue, published to through the default exchange.",
            "servers": [broker],
            "parameters": {"instance_id": {"description": "The calling process's instance id."}},
            "messages": result_messages,
            "bindings": {
                "amqp": {
                    "is": "queue",
                    "queue": {
                        "name": names.reply_queue("{instance_id}"),
                        "durable": False,
                        "exclusive": True,
                        "autoDelete": True,
                        "vhost": "/",
                    },
                    "bindingVersion": AMQP_BINDING,
                }
            },
        },
        names.deliver: {
            "address": names.deliver,
            "title": "Deliveries",
            "description": "Direct exchange; each gateway instance has its own queue (`"
            + names.deliver_queue("<gateway_id>")
            + "`) bound with its instance id.",
            "servers": [broker],
            "messages": deliver_messages,
            "bindings": exchange(names.deliver, "direct"),
        },
        names.events: {
            "address": names.events,
            "title": "Domain events",
            "description": "Topic exchange; routing key = event name. Whoever wants an event binds its "
            "own queue (`" + names.events_queue("<service>") + "`).",
            "servers": [broker],
            "messages": event_messages,
            "bindings": exchange(names.events, "topic"),
        },
    }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Parley",
            "version": "1",
            "description": "Instant-messaging backend: the client WebSocket protocol (PROTOCOL.md v1, "
            "docs/protocol.md) and the RabbitMQ commands, deliveries and events between Parley's "
            "services. Generated from the pydantic models in shared/contracts/ by "
            "`python -m docs.generate.asyncapi`; do not edit by hand. Broker names use the "
            f"default namespace `{NAMESPACE}` (PARLEY_NAMESPACE).",
        },
        "defaultContentType": "application/json",
        "servers": {
            "gateway": {
                "host": "127.0.0.1:8000",
                "protocol": "ws",
                "pathname": "/ws",
                "description": "The public gateway (PARLEY_GATEWAY_HOST, PARLEY_GATEWAY_PORT).",
            },
            "broker": {
                "host": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "description": "RabbitMQ, reached only by Parley's own processes (PARLEY_AMQP_URL).",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def render_asyncapi(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- files -----------------------------------------------------------------------------------------
def generated_files(root: Path = ROOT) -> dict[Path, str]:
    """Relative path → the content it should have now."""
    document = build_document()
    protocol = root / PROTOCOL_PATH
    current = protocol.read_text(encoding="utf-8") if protocol.exists() else ""
    return {
        ASYNCAPI_PATH: render_asyncapi(document),
        PROTOCOL_PATH: with_reference(current, render_reference(document)),
    }


def stale_files(root: Path = ROOT) -> list[Path]:
    stale = []
    for path, content in generated_files(root).items():
        target = root / path
        if not target.exists() or target.read_text(encoding="utf-8") != content:
            stale.append(path)
    return stale


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m docs.generate.asyncapi",
        description="Generate docs/asyncapi.json and the reference section of docs/protocol.md.",
    )
    parser.add_argument("--check", action="store_true", help="only check that both files are up to date")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(root)
        for path in stale:
            print(f"{path} is stale: the models in shared/contracts/ changed; run {REGENERATE}", file=sys.stderr)
        if not stale:
            print(f"{ASYNCAPI_PATH} and {PROTOCOL_PATH} are up to date")
        return 1 if stale else 0
    for path, content in generated_files(root).items():
        target = root / path
        if not target.exists() or target.read_text(encoding="utf-8") != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
            print(f"wrote {path}")
        else:
            print(f"{path} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
