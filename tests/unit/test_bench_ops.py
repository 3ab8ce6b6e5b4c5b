"""parley-bench --ops, its pure parts: the mix it takes, how it draws operations, the frames it
sends for each and what a stored message gives the two users, the window it counts in, and its
table and verdict."""
import random
from types import SimpleNamespace
from typing import Any

import pytest

from bench.ops import (
    BURN_EVERY, EMOJI, MIX, OPERATIONS, Conversation, OpTally, User, after_send, choose, ops_table, parse_mix,
    request_for, slow_operations,
)


def pair() -> tuple[User, User]:
    conversation = Conversation()
    a, b = (User(SimpleNamespace(user_id=u), None, conversation, SimpleNamespace())  # type: ignore[arg-type]
            for u in ("u_a", "u_b"))
    a.friend, b.friend = b, a
    return a, b


def test_parse_mix_takes_weights_and_zeroes_the_rest() -> None:
    mix = parse_mix("send=3, edit=1.5,")
    assert mix["send"] == 3 and mix["edit"] == 1.5 and mix["sync"] == 0
    assert set(mix) == set(OPERATIONS)


@pytest.mark.parametrize("text", ["send", "send=x", "fly=1,send=1", "send=1,edit=-1", "edit=1"])
def test_parse_mix_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="--mix"):
        parse_mix(text)


def test_choose_draws_only_what_is_possible_and_falls_back_to_send() -> None:
    rng = random.Random(1)
    drawn = {choose(rng, MIX, {"send", "sync"}) for _ in range(500)}
    assert drawn == {"send", "sync"}
    assert {choose(rng, MIX, set()) for _ in range(50)} == {"send"}
    everything = [choose(rng, MIX, set(OPERATIONS)) for _ in range(4000)]
    assert abs(everything.count("send") / 4000 - MIX["send"] / sum(MIX.values())) < 0.05


def test_a_new_pair_can_only_send_and_sync() -> None:
    a, _ = pair()
    assert a.possible() == {"send", "sync"}
    assert request_for("edit", a, random.Random(1)) is None
    assert request_for("ack", a, random.Random(1)) is None


def test_sends_give_the_sender_texts_to_edit_and_the_friend_texts_to_react_to_and_burning_ones_to_open() -> None:
    a, b = pair()
    rng = random.Random(2)
    kinds = []
    for n in range(BURN_EVERY):
        kind, data = request_for("send", a, rng)  # type: ignore[misc]
        kinds.append("burn_seconds" in data)
        assert kind == "message.send" and data["to"] == {"user_id": "u_b"}
        after_send(a, data, {"conversation_id": "d_1", "seq": n + 1, "message_id": f"m_{n}"})
    assert kinds == [False] * (BURN_EVERY - 1) + [True]
    assert list(a.mine) == list(b.theirs) == [f"m_{n}" for n in range(BURN_EVERY - 1)]
    assert list(b.sealed) == [f"m_{BURN_EVERY - 1}"] and not a.sealed
    assert b.possible() == {"send", "sync", "ack", "read", "history", "react", "open"}
    assert request_for("ack", b, rng) == ("message.ack", {"conversation_id": "d_1", "seq": BURN_EVERY})
    assert request_for("open", b, rng) == ("message.open", {"message_id": f"m_{BURN_EVERY - 1}"})
    assert not b.sealed  # opened once
    kind, page = request_for("history", b, rng)  # type: ignore[misc]
    assert kind == "history.fetch" and 2 <= page["before_seq"] <= BURN_EVERY + 1


def test_react_puts_each_emoji_once_per_message() -> None:
    a, b = pair()
    after_send(a, {"text": "x"}, {"conversation_id": "d_1", "seq": 1, "message_id": "m_1"})
    rng = random.Random(3)
    for _ in EMOJI:
        kind, data = request_for("react", b, rng)  # type: ignore[misc]
        assert kind == "reaction.add" and data["emoji"] not in b.reacted.get("m_1", set())
        b.reacted.setdefault("m_1", set()).add(data["emoji"])
    assert request_for("react", b, rng) is None


def test_the_tally_counts_what_started_in_the_window() -> None:
    tally = OpTally(start_ns=1_000, end_ns=2_000_000_000)
    tally.record("edit", 500, 5_000_000)  # warm-up
    tally.record("edit", 1_000, 3_001_000)
    tally.record("edit", 2_000, 10_002_000)
    tally.record("open", 3_000, 4_000, "not_found")
    tally.record("open", 2_000_000_000, 2_100_000_000)  # after
    summary = tally.summary()
    assert summary["edit"]["n"] == 2 and summary["edit"]["p50"] == 10.0 and summary["edit"]["max"] == 10.0
    assert summary["open"] == {"p50": None, "p99": None, "max": None, "n": 0, "errors": {"not_found": 1}}
    assert tally.measured() == 3 and tally.done == 5


def result(p99: dict[str, float]) -> dict[str, Any]:
    ops = {op: {"p50": None, "p99": None, "max": None, "n": 0, "errors": {}} for op in OPERATIONS}
    for op, value in p99.items():
        ops[op] = {"p50": value / 2, "p99": value, "max": value, "n": 10, "errors": {}}
    return {"users": 4, "rate": 8.0, "per_second": 7.5, "seconds": 10.0, "warmup": 2.0, "operations": ops,
            "loadavg_start": [1.0], "loadavg_end": [1.2], "cpus": 2,
            "cpu": {"chat": {"cpu_percent": 20.0, "cpu_ms_per_message": 2.5}}}


def test_table_and_verdict_name_the_operations_over_the_ceiling() -> None:
    r = result({"send": 20.0, "edit": 1200.0})
    assert slow_operations(r) == ["edit"] and slow_operations(r, 2000) == []
    table = ops_table(r)
    assert "message.edit" in table and "p99 over 50 ms" in table.split("message.edit")[1].splitlines()[0]
    assert "reaction.add" not in table  # none measured
    assert "chat" in table and "2.50" in table
