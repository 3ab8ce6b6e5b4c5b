"""services/gateway/frames.py: one client frame through the checks of PROTOCOL.md, in order.

frame (size, JSON, envelope) → known type → bound socket → fields.
"""
import json

import pytest

from services.gateway.frames import FrameError, parse_frame
from shared.contracts import auth, chat
from shared.contracts.errors import ErrorCode

MAX = 64 * 1024


def frame(type_: str = "ping", id_: str | None = "r1", data: dict | None = None, **extra) -> str:
    body: dict = {"type": type_, **extra}
    if id_ is not None:
        body["id"] = id_
    if data is not None:
        body["data"] = data
    return json.dumps(body, ensure_ascii=False)


def rejected(text: str, *, bound: bool = True, max_bytes: int = MAX) -> FrameError:
    with pytest.raises(FrameError) as info:
        parse_frame(text, max_bytes=max_bytes, bound=bound)
    return info.value


SEND = {"to": {"user_id": "u_b"}, "client_msg_id": "c1", "text": "hi"}


# --- frame: size, JSON, envelope -------------------------------------------------------------
def test_invalid_json_is_bad_request_without_id():
    err = rejected('{"type": "ping", "id": "r1"')
    assert (err.code, err.frame_id) == (ErrorCode.BAD_REQUEST, None)


@pytest.mark.parametrize("text", ["[1, 2]", '"ping"', "42", "null"])
def test_json_that_is_not_an_object_is_bad_request(text):
    err = rejected(text)
    assert (err.code, err.frame_id) == (ErrorCode.BAD_REQUEST, None)


def test_over_max_bytes_is_too_large_with_the_id_it_could_read():
    text = frame("message.send", "big-1", {**SEND, "text": "x" * 300})
    err = rejected(text, max_bytes=200)
    assert (err.code, err.frame_id) == (ErrorCode.TOO_LARGE, "big-1")


def test_over_max_bytes_and_unreadable_is_too_large_without_id():
    err = rejected('{"id": "r1", "type": "ping", "data": ' + "[" * 300, max_bytes=200)
    assert (err.code, err.frame_id) == (ErrorCode.TOO_LARGE, None)


def test_size_is_counted_in_utf8_bytes_not_characters():
    text = frame("ping", "r1", {"pad": "é" * 120})  # 169 characters, 289 bytes
    assert len(text) <= 200 < len(text.encode())
    err = rejected(text, max_bytes=200)
    assert err.code == ErrorCode.TOO_LARGE


def test_size_is_checked_before_the_socket_is_bound():
    err = rejected(frame("message.send", "r9", {**SEND, "text": "x" * 300}), bound=False, max_bytes=200)
    assert (err.code, err.frame_id) == (ErrorCode.TOO_LARGE, "r9")


def test_missing_id_is_bad_request_naming_it():
    err = rejected(frame("ping", None, {}))
    assert err.code == ErrorCode.BAD_REQUEST
    assert err.frame_id is None
    assert "id" in err.message


def test_unknown_envelope_field_is_bad_request_with_the_id():
    err = rejected(frame("ping", "r1", {}, extra_field=1))
    assert (err.code, err.frame_id) == (ErrorCode.BAD_REQUEST, "r1")
    assert "extra_field" in err.message


# --- known type ------------------------------------------------------------------------------
def test_unknown_type_is_bad_request_naming_it_and_carrying_the_id():
    err = rejected(frame("message.teleport", "r7", {}))
    assert (err.code, err.frame_id) == (ErrorCode.BAD_REQUEST, "r7")
    assert "message.teleport" in err.message


def test_unknown_type_on_an_unbound_socket_is_bad_request_not_unauthorized():
    err = rejected(frame("message.teleport", "r7", {}), bound=False)
    assert (err.code, err.frame_id) == (ErrorCode.BAD_REQUEST, "r7")


def test_internal_operations_are_unknown_to_clients():
    err = rejected(frame("chat.sync", "r2", {"user_id": "u", "device_id": "d", "gateway_id": "g", "conn_id": "c"}))
    assert err.code == ErrorCode.BAD_REQUEST
    assert "chat.sync" in err.message


# --- bound socket ----------------------------------------------------------------------------
def test_operation_needing_a_session_on_unbound_socket_is_unauthorized():
    err = rejected(frame("friends.list", "r3", {}), bound=False)
    assert (err.code, err.frame_id) == (ErrorCode.UNAUTHORIZED, "r3")


def test_unbound_check_comes_before_fields():
    err = rejected(frame("history.fetch", "r4", {"limit": 201}), bound=False)  # no conversation_id either
    assert (err.code, err.frame_id) == (ErrorCode.UNAUTHORIZED, "r4")


@pytest.mark.parametrize(
    "type_, data",
    [
        ("ping", {}),
        ("auth.login", {"username": "alice", "password": "secret-password"}),
        ("auth.register", {"username": "alice", "password": "secret-password"}),
        ("auth.resume", {"token": "abc"}),
    ],
)
def test_session_operations_are_allowed_unbound(type_, data):
    parsed = parse_frame(frame(type_, "r5", data), max_bytes=MAX, bound=False)
    assert parsed.id == "r5"
    assert parsed.operation.name == type_


def test_data_defaults_to_empty_object():
    parsed = parse_frame(frame("ping", "r6"), max_bytes=MAX, bound=False)
    assert parsed.request.model_dump() == {}


# --- fields ----------------------------------------------------------------------------------
def test_bad_field_on_bound_socket_names_the_field():
    err = rejected(frame("history.fetch", "r8", {"conversation_id": "d_1", "limit": 0}))
    assert (err.code, err.frame_id) == (ErrorCode.BAD_REQUEST, "r8")
    assert err.message.startswith("data.limit")


def test_missing_field_is_named_with_its_path():
    err = rejected(frame("message.send", "r8", {"client_msg_id": "c1", "text": "hi"}))
    assert err.code == ErrorCode.BAD_REQUEST
    assert err.message.startswith("data.to")


def test_unknown_field_in_data_is_bad_request():
    err = rejected(frame("friends.list", "r8", {"everyone": True}))
    assert err.code == ErrorCode.BAD_REQUEST
    assert "data.everyone" in err.message


def test_username_is_folded_to_lower_case():
    parsed = parse_frame(
        frame("auth.register", "r1", {"username": "  Alice.B ", "password": "secret-password"}), max_bytes=MAX, bound=False
    )
    assert isinstance(parsed.request, auth.Register)
    assert parsed.request.username == "alice.b"
    login = parse_frame(frame("auth.login", "r2", {"username": "ALICE", "password": "x"}), max_bytes=MAX, bound=False)
    assert login.request.username == "alice"
    assert login.request.device_id == "default"


def test_username_with_forbidden_characters_is_bad_request():
    err = rejected(frame("auth.register", "r1", {"username": "al ice", "password": "secret-password"}), bound=False)
    assert err.code == ErrorCode.BAD_REQUEST
    assert err.message.startswith("data.username")


def test_message_send_without_text_or_file_is_rejected():
    err = rejected(frame("message.send", "r1", {"to": {"user_id": "u_b"}, "client_msg_id": "c1"}))
    assert (err.code, err.frame_id) == (ErrorCode.BAD_REQUEST, "r1")
    assert "text" in err.message


def test_message_text_up_to_4000_characters_passes_and_4001_is_rejected():
    ok = parse_frame(frame("message.send", "r1", {**SEND, "text": "y" * 4000}), max_bytes=MAX, bound=True)
    assert isinstance(ok.request, chat.MessageSend)
    assert len(ok.request.text) == 4000
    err = rejected(frame("message.send", "r2", {**SEND, "text": "y" * 4001}))
    assert (err.code, err.frame_id) == (ErrorCode.BAD_REQUEST, "r2")
    assert err.message.startswith("data.text")


def test_message_ttl_out_of_range_is_rejected():
    err = rejected(frame("message.send", "r1", {**SEND, "ttl_seconds": 604801}))
    assert err.message.startswith("data.ttl_seconds")


def test_history_limit_defaults_to_50_and_201_is_rejected():
    parsed = parse_frame(frame("history.fetch", "r1", {"conversation_id": "d_1"}), max_bytes=MAX, bound=True)
    assert isinstance(parsed.request, chat.HistoryFetch)
    assert parsed.request.limit == 50
    assert parsed.request.before_seq is None
    assert parse_frame(
        frame("history.fetch", "r2", {"conversation_id": "d_1", "limit": 200}), max_bytes=MAX, bound=True
    ).request.limit == 200
    err = rejected(frame("history.fetch", "r3", {"conversation_id": "d_1", "limit": 201}))
    assert (err.code, err.frame_id) == (ErrorCode.BAD_REQUEST, "r3")
    assert err.message.startswith("data.limit")


# --- which operation a refused frame was (the gateway counts refused message.send) -------------
def test_a_frame_refused_for_its_fields_names_its_operation():
    err = rejected(frame("message.send", "r1", {"to": {"user_id": "u_b"}}))
    assert (err.code, err.operation) == (ErrorCode.BAD_REQUEST, "message.send")


def test_a_frame_refused_before_its_type_is_known_names_no_operation():
    assert rejected(frame("message.sned", "r1", SEND)).operation is None
    assert rejected(frame("message.send", None, SEND)).operation is None
    assert rejected(frame("message.send", "r1", {**SEND, "text": "x" * 300}), max_bytes=200).operation is None
