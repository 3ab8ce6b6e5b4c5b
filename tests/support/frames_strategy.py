"""Hypothesis strategies for client frames: well-formed envelopes with good, boundary and wrong
field values for every public operation, broken envelopes, and arbitrary text.

Used by tests/integration/test_fuzz_frames.py. A frame is a `Frame`: the exact text (or bytes)
sent on the socket, plus what the test may expect of its reply.
"""
import json
from dataclasses import dataclass, field
from typing import Any

import orjson
from hypothesis import strategies as st

MAX_FRAME_BYTES = 64 * 1024  # PROTOCOL.md: a frame over 64 KiB gets `too_large`

# Placeholder for an envelope id: the test gives each such frame an id of its own.
UNIQUE = object()

BOUNDARY_INTS = [0, 1, -1, 2, 50, 200, 201, 604800, 604801, 2**31, 2**53 - 1, 2**53, 2**53 + 1,
                 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70, -(2**63), -(2**63) - 1, -(2**70)]
WEIRD_STRINGS = [
    "", " ", "   ", "\t\n", "\x00", "a\x00b", "\u202e", "\ufeff", "é", "ß", "İ", "ǅ", "ﬃ", "🙂",
    "👩‍👩‍👧‍👦", "Ω" * 3, "\U0010ffff", "\ud800", "a\udfffb",  # lone surrogates: escaped by json.dumps
    ".*", "^", "$", "(a+)+$", "[", "\\", "%", "_", "a|b", "$where", "$gt", '{"$gt": ""}', "a.b",
    "null", "true", "0", "-1", "1e400", "NaN", "../../etc/passwd", "<script>", "' OR 1=1 --",
    "u_", "g_", "d_", "m_", "f_", "d_x", "g_x", "u_nobody",
]


@dataclass(frozen=True)
class Pools:
    """Ids of the world the fuzzed socket lives in."""

    self_id: str
    friend_id: str
    stranger_id: str
    username: str
    group_ids: list[str]  # own group, the friend's group (a member), a group we are not in
    conversation_ids: list[str]
    message_ids: list[str]
    file_ids: list[str]
    nonexistent: list[str] = field(
        default_factory=lambda: ["u_0", "u_nobody", "g_nope", "g_000000000000000000000000", "d_nope",
                                 "m_nope", "f_nope", "000000000000000000000000"])


# --- values --------------------------------------------------------------------------------------
def junk_values() -> st.SearchStrategy[Any]:
    """Any JSON value, of any type, nested a little."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from(BOUNDARY_INTS),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([0.5, -0.0, 1.0, 1e300, 2.0**53, 1e-320]),
        st.text(max_size=20),
        st.sampled_from(WEIRD_STRINGS),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=8,
    )


def valid_strings(low: int, high: int) -> st.SearchStrategy[str]:
    """Strings within a field's length bounds (counted in characters), unicode included."""
    return st.one_of(
        st.text(min_size=low, max_size=min(high, 40)).filter(lambda t: t.strip() != ""),
        st.sampled_from(sorted({"x" * low, "x" * high, "é" * high, "🙂" * high, "ok"}))
        .filter(lambda t: low <= len(t) <= high),
    )


def edge_strings(low: int, high: int) -> st.SearchStrategy[str]:
    """Strings at and past the bounds, blank, unicode oddities and pattern-looking text."""
    return st.one_of(
        st.text(max_size=min(high + 2, 80)),
        st.sampled_from(WEIRD_STRINGS),
        st.sampled_from(sorted({"x" * max(low - 1, 0), "x" * (high + 1), "é" * (high + 1), " " * high})),
    )


Field = tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]  # (a valid value, an invalid or edge one)


def strings(low: int, high: int) -> Field:
    return valid_strings(low, high), st.one_of(edge_strings(low, high), junk_values())


def ints(low: int, high: int) -> Field:
    valid = st.one_of(st.integers(min_value=low, max_value=min(high, 20)), st.integers(min_value=low, max_value=high),
                      st.sampled_from(sorted({low, high})))
    edge = st.one_of(st.sampled_from(sorted({low - 1, high + 1, *BOUNDARY_INTS})),
                     st.sampled_from([float(low), float(high), 1.5, str(low), str(high), True, False]), junk_values())
    return valid, edge


def ids(*pools: list[str]) -> Field:
    """Ids from the pools (the first, the likeliest to be allowed, weighs double), or any string."""
    first = st.sampled_from(pools[0])
    known = st.sampled_from(sorted({i for pool in pools for i in pool}))
    return st.one_of(first, first, known, known, valid_strings(1, 128)), st.one_of(edge_strings(1, 128), junk_values())


def choices(valid: list[Any], invalid: list[Any]) -> Field:
    return st.sampled_from(valid), st.one_of(st.sampled_from(invalid), junk_values())


# --- operations ----------------------------------------------------------------------------------
def operation_fields(p: Pools) -> dict[str, dict[str, Field]]:
    """Every public operation but auth.login / auth.resume / auth.logout: its fields ("?" = optional)."""
    user_ids = ids([p.self_id, p.friend_id, p.stranger_id], p.nonexistent)
    group_ids = ids(p.group_ids, p.conversation_ids, p.nonexistent)
    conversation_ids = ids(p.conversation_ids, p.group_ids, p.nonexistent)
    seqs = ints(1, 2**53)
    some_users = st.lists(user_ids[0], max_size=6)
    user_id_lists = (
        st.one_of(some_users, st.sampled_from([[p.friend_id] * 500, [p.stranger_id, p.stranger_id], [p.self_id],
                                               [f"u_{i}" for i in range(500)]])),
        st.one_of(st.sampled_from([[p.friend_id] * 501, [""], [None], [p.friend_id, 5]]),
                  st.lists(user_ids[1], min_size=1, max_size=3), junk_values()),
    )
    targets = (
        st.one_of(st.fixed_dictionaries({"user_id": st.sampled_from([p.friend_id, p.friend_id, p.self_id,
                                                                     p.stranger_id, *p.nonexistent[:2]])}),
                  st.fixed_dictionaries({"group_id": st.sampled_from([*p.group_ids, *p.conversation_ids[:1]])})),
        st.one_of(st.fixed_dictionaries({}, optional={"user_id": st.one_of(*user_ids),
                                                      "group_id": st.one_of(*group_ids),
                                                      "conversation_id": conversation_ids[0]}),
                  junk_values()),
    )
    texts = strings(1, 4000)
    return {
        "ping": {},
        "auth.register": {
            "username": (st.one_of(st.from_regex(r"[a-zA-Z0-9_.\-]{3,32}", fullmatch=True), st.just(p.username)),
                         strings(3, 32)[1]),
            "password": strings(8, 128),
            "display_name?": strings(1, 64),
        },
        "users.search": {"query": (st.one_of(valid_strings(1, 64), st.just(p.username[:4])), strings(1, 64)[1])},
        "friends.request": {"user_id": user_ids},
        "friends.accept": {"user_id": user_ids},
        "friends.remove": {"user_id": user_ids},
        "friends.list": {},
        "message.send": {
            "to": targets,
            "client_msg_id": (st.one_of(valid_strings(1, 64), st.sampled_from(["dup-1", "dup-2"])), strings(1, 64)[1]),
            "text?": texts,
            "file_id?": ids(p.file_ids, p.message_ids, p.nonexistent),
            "ttl_seconds?": ints(1, 604800),
        },
        "message.ack": {"conversation_id": conversation_ids, "seq": seqs},
        "message.read": {"conversation_id": conversation_ids, "seq": seqs},
        "history.fetch": {"conversation_id": conversation_ids, "before_seq?": seqs, "limit?": ints(1, 200)},
        "message.recall": {"message_id": ids(p.message_ids, p.nonexistent)},
        "typing": {"conversation_id": conversation_ids},
        "conversations.list": {},
        "groups.create": {"name": strings(1, 64), "member_ids": user_id_lists},
        "groups.add_members": {"group_id": group_ids, "user_ids": user_id_lists},
        "groups.leave": {"group_id": group_ids},
        "groups.list": {},
        "groups.members": {"group_id": group_ids},
        "groups.set_role": {
            "group_id": group_ids,
            "user_id": user_ids,
            "role": choices(["admin", "member"], ["owner", "", "ADMIN", "admin "]),
        },
    }


@st.composite
def operation_data(draw: st.DrawFn, fields: dict[str, Field], mutate: bool) -> dict[str, Any]:
    """Valid fields (optional ones present or not); with `mutate`, fields wrong, missing or extra."""
    data: dict[str, Any] = {}
    for name, (good, bad) in fields.items():
        optional, key = name.endswith("?"), name.rstrip("?")
        mode = draw(st.sampled_from(["good", "bad", "absent"])) if mutate else "good"
        if mode == "good" and (not optional or draw(st.booleans())):
            data[key] = draw(good)
        elif mode == "bad":
            data[key] = draw(bad)
    if "client_msg_id" in fields and not mutate and "text" not in data and "file_id" not in data:
        data["text"] = draw(fields["text?"][0])
    if mutate and (not fields or draw(st.booleans())):  # an unknown extra field
        data[draw(st.sampled_from(["admin", "user_id", "extra", "__proto__", "$set", ""]))] = draw(junk_values())
    return data


@dataclass(frozen=True)
class Frame:
    """What goes on the wire: `envelope` is serialised at send time (its id may be UNIQUE)."""

    envelope: Any = None  # a JSON value, serialised with json.dumps
    text: str | None = None  # sent as is
    binary: bytes | None = None
    ensure_ascii: bool = True
    pad_to: int | None = None  # trailing spaces up to this many UTF-8 bytes

    def describe(self) -> str:
        if self.binary is not None:
            return f"binary {self.binary[:60]!r}"
        return repr(self.envelope if self.text is None else self.text)[:400]


def serialise(frame: Frame, frame_id: str) -> str | bytes:
    """The frame as sent, UNIQUE ids replaced by `frame_id`."""
    if frame.binary is not None:
        return frame.binary
    if frame.text is not None:
        text = frame.text
    else:
        envelope = frame.envelope
        if isinstance(envelope, dict) and envelope.get("id") is UNIQUE:
            envelope = {**envelope, "id": frame_id}
        text = json.dumps(envelope, ensure_ascii=frame.ensure_ascii)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate can only travel escaped
            text = json.dumps(envelope)
    if frame.pad_to is not None:
        text += " " * max(frame.pad_to - len(text.encode("utf-8")), 0)
    return text


def readable_id(sent: str | bytes) -> tuple[bool, Any]:
    """(certain, id): the id the reply must carry; `certain` False where readers may disagree.

    PROTOCOL.md: a frame's reply carries "its id if it could be read, else null". Text that
    strict JSON readers reject (orjson, the gateway's) has no readable id; text that only
    lenient readers take (lone surrogate escapes, 1e400) may be answered either way.
    """
    if isinstance(sent, bytes):
        return True, None
    try:
        raw = orjson.loads(sent)
    except orjson.JSONDecodeError:
        try:
            lenient = json.loads(sent, parse_constant=_refuse)
        except (ValueError, RecursionError):
            return True, None
        if isinstance(lenient, dict) and isinstance(lenient.get("id"), str):
            return False, lenient["id"]
        return True, None
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return True, raw["id"]
    return True, None


def _refuse(name: str) -> Any:
    raise ValueError(name)


# --- frames --------------------------------------------------------------------------------------
def envelope_ids() -> st.SearchStrategy[Any]:
    return st.one_of(*[st.just(UNIQUE)] * 6, *strings(1, 128), junk_values())


def operation_frames(p: Pools, mutate: bool) -> st.SearchStrategy[Frame]:
    """(a) `{"type": <public op>, "id", "data"}`: valid fields, or (`mutate`) boundary and wrong ones."""
    per_op = [
        st.builds(
            lambda data, extra, ascii_, op=op: Frame(envelope={"type": op, "id": UNIQUE, "data": data, **extra},
                                                     ensure_ascii=ascii_),
            operation_data(fields, mutate),
            st.one_of(st.just({}), st.just({}), st.dictionaries(st.sampled_from(["extra", "ok", "error", "token"]),
                                                                junk_values(), min_size=1, max_size=2))
            if mutate else st.just({}),
            st.booleans(),
        )
        for op, fields in operation_fields(p).items()
    ]
    return st.one_of(*per_op)


def envelope_frames(p: Pools) -> st.SearchStrategy[Frame]:
    """(b) unknown or internal types, missing or odd ids, data that is not an object."""
    types = st.one_of(
        st.sampled_from(["message.teleport", "Message.send", "ping ", " ping", "PING", "reply", "message.new",
                         "auth.users.get", "auth.health", "chat.health", "files.health", "chat.sync",
                         "chat.files.access", "files.upload.begin", "files.read", "files.open", "files.info",
                         "files.upload.abort", "", "x" * 64, "x" * 65, "message", "groups", "__proto__",
                         "constructor", "ping\x00", "méssage.send"]),
        st.text(max_size=70),
        st.sampled_from(sorted(operation_fields(p))),
        junk_values(),
    )
    data = st.one_of(st.just({}), junk_values(), st.dictionaries(st.text(max_size=10), junk_values(), max_size=3))
    keys = st.fixed_dictionaries({}, optional={"type": types, "id": envelope_ids(), "data": data,
                                               "ok": junk_values(), "extra": junk_values()})
    return st.builds(lambda env, ascii_: Frame(envelope=env, ensure_ascii=ascii_), keys, st.booleans())


def raw_frames(p: Pools) -> st.SearchStrategy[Frame]:
    """(c) arbitrary JSON values, text that is not JSON, binary frames, frames near 64 KiB."""
    near = [MAX_FRAME_BYTES - 1, MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1, MAX_FRAME_BYTES + 100, 2 * MAX_FRAME_BYTES,
            1024 * 1024]
    return st.one_of(
        st.builds(lambda v: Frame(envelope=v), junk_values()),
        st.builds(lambda t: Frame(text=t), st.text(max_size=200)),
        st.builds(lambda t: Frame(text=t), st.sampled_from(
            ["", " ", "{", "}", "{}", "[]", "null", '"ping"', "{this is not json", '{"type": "ping", "id": "x"',
             '{"type": "ping", "id": "dupkeys", "id": 5}', '{"type":"ping","id":"nan","data":{"x":NaN}}',
             '{"type":"ping","id":"inf","data":{"x":1e400}}', '\ufeff{"type":"ping","id":"bom"}',
             '{"type":"ping","id":"sur\\ud800"}', '{"type":"ping","id":"ok","data":{}} {}',
             "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000,
             '{"type":"ping","id":"deep","data":' + '{"a":' * 1000 + "1" + "}" * 1000 + "}"])),
        st.builds(lambda b: Frame(binary=b), st.binary(max_size=50)),
        st.builds(lambda frame, size: Frame(envelope=frame.envelope, ensure_ascii=frame.ensure_ascii, pad_to=size),
                  st.one_of(operation_frames(p, False), st.just(Frame(envelope={"type": "ping", "id": UNIQUE, "data": {}}))),
                  st.sampled_from(near)),
        st.builds(lambda pad, size: Frame(envelope={"type": "message.send", "id": UNIQUE,
                                                    "data": {"to": {"user_id": p.friend_id}, "client_msg_id": "big",
                                                             "text": pad * size}}),
                  st.sampled_from(["x", "é", "🙂", "\u0000"]), st.sampled_from([4000, 4001, 16_384, 70_000])),
    )


def any_frame(p: Pools) -> st.SearchStrategy[Frame]:
    valid, mutated = operation_frames(p, False), operation_frames(p, True)
    return st.one_of(valid, valid, valid, mutated, mutated, envelope_frames(p), raw_frames(p))
