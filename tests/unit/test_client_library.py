"""The client library's own rules (clients/python, `parley_client`), without a server: what is a
duplicate, how far a device acknowledges, which tries are repeated, where a URL points."""
import asyncio

import pytest
from parley_client import ConnectionLost, Gateway, Inbox, PushQueue, ReplyError, RequestTimeout, RetryPolicy
from parley_client.outbox import Attempt, with_retries


def test_messages_in_order_from_the_start_are_acknowledged_to_the_last() -> None:
    inbox = Inbox()
    assert all(inbox.keep("c", seq) for seq in (1, 2, 3))
    assert inbox.ack_targets() == {"c": 3}
    inbox.acknowledged("c", 3)
    assert inbox.ack_targets() == {}
    assert inbox.received == 3 and inbox.duplicates == 0


def test_a_gap_stops_the_ack_until_it_is_filled() -> None:
    inbox = Inbox()
    for seq in (1, 2, 3, 5, 7):
        inbox.keep("c", seq)
    assert inbox.ack_targets() == {"c": 3}  # holding 1-3, 5 and 7: ack 3 (docs/protocol.md)
    inbox.keep("c", 4)
    assert inbox.ack_targets() == {"c": 5}
    inbox.keep("c", 6)
    assert inbox.ack_targets() == {"c": 7}
    assert not inbox.keep("c", 5) and inbox.duplicates == 1  # held: a duplicate however it comes


def test_duplicates_are_dropped_by_conversation_and_seq() -> None:
    inbox = Inbox()
    assert inbox.keep("a", 1) and inbox.keep("b", 1)  # the same seq in another conversation is another message
    assert not inbox.keep("a", 1) and not inbox.keep("b", 1)
    assert inbox.duplicates == 2 and inbox.received == 2
    assert inbox.holds("a", 1) and not inbox.holds("a", 2) and not inbox.holds("z", 1)


def test_a_sync_says_where_the_cursor_is() -> None:
    inbox = Inbox()
    inbox.begin_sync()
    assert inbox.keep("c", 201, in_sync=True) and inbox.keep("c", 202, in_sync=True)
    inbox.end_sync()
    assert inbox.ack_targets() == {"c": 202}  # the sync starts just above the device's cursor (200)
    # Below the cursor: acknowledged before by this device, so a duplicate (a retried send's re-push).
    assert not inbox.keep("c", 150)


def test_a_conversation_a_sync_leaves_out_is_acknowledged_up_to_what_is_held() -> None:
    inbox = Inbox()
    inbox.keep("c", 8)  # live, with a lower one perhaps lost: held, not known to be a run yet
    inbox.keep("c", 10)
    inbox.begin_sync()
    inbox.end_sync()  # nothing of "c" came: the cursor is at or above all of it
    assert inbox.ack_targets() == {"c": 10}


def test_a_live_first_conversation_is_taken_to_start_at_its_first_message_for_acks_only() -> None:
    inbox = Inbox()
    inbox.keep("c", 41)  # a conversation acknowledged up to date before this client started
    inbox.keep("c", 42)
    assert inbox.ack_targets() == {"c": 42}
    assert inbox.keep("c", 40)  # an earlier one overtaken: still new (the guess decides no duplicate)
    assert not inbox.keep("c", 40)


def test_own_sends_count_as_held() -> None:
    inbox = Inbox()
    inbox.hold_own("c", 1)
    inbox.keep("c", 2)
    inbox.hold_own("c", 3)
    assert inbox.ack_targets() == {"c": 3} and inbox.received == 1
    assert not inbox.keep("c", 3)  # pushed back in a later sync: already held


def test_runs_merge_from_both_sides() -> None:
    inbox = Inbox()
    inbox.begin_sync()
    inbox.keep("c", 11, in_sync=True)  # floor 10
    for seq in (15, 13, 17, 14, 16, 12):
        assert inbox.keep("c", seq)
    assert inbox.ack_targets() == {"c": 17}
    assert all(inbox.holds("c", seq) for seq in range(1, 18)) and not inbox.holds("c", 18)


def test_gateway_urls_are_the_http_base_or_the_socket() -> None:
    assert Gateway.parse("http://127.0.0.1:8000") == Gateway("ws://127.0.0.1:8000/ws", "http://127.0.0.1:8000")
    assert Gateway.parse("ws://127.0.0.1:8001/ws") == Gateway("ws://127.0.0.1:8001/ws", "http://127.0.0.1:8001")
    assert Gateway.parse("https://chat.example/") == Gateway("wss://chat.example/ws", "https://chat.example")
    assert Gateway.parse("localhost:8000") == Gateway("ws://localhost:8000/ws", "http://localhost:8000")


def replies(*outcomes: object):
    """An attempt function answering each try with the next outcome (a reply, or an exception)."""
    queue = list(outcomes)
    calls: list[tuple[float, float]] = []

    async def attempt(reply_timeout: float, bound_wait: float):
        calls.append((reply_timeout, bound_wait))
        outcome = queue.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return attempt, calls


def ok(seq: int) -> dict:
    return {"type": "reply", "id": "r", "ok": True, "data": {"seq": seq}}


def error(code: str) -> dict:
    return {"type": "reply", "id": "r", "ok": False, "error": {"code": code, "message": code}}


FAST = RetryPolicy(attempt_timeout=1, first_backoff=0.001, max_backoff=0.002, max_attempts=5, rate_limited_pause=0)


async def test_unavailable_and_timeouts_are_tried_again_then_the_answer_is_returned() -> None:
    attempt, calls = replies(error("unavailable"), RequestTimeout("slow"), ok(7))
    seen: list[Attempt] = []
    assert await with_retries(attempt, FAST, reconnects=False, on_attempt=seen.append) == {"seq": 7}
    assert [a.outcome for a in seen] == ["unavailable", "timeout", "ok"] and len(calls) == 3
    assert [a.retrying for a in seen] == [True, True, False]


async def test_a_final_error_is_raised_at_once() -> None:
    for code in ("forbidden", "bad_request", "internal", "rate_limited"):
        attempt, calls = replies(error(code), ok(1))
        with pytest.raises(ReplyError) as refused:
            await with_retries(attempt, FAST, reconnects=True)
        assert refused.value.code == code and len(calls) == 1
    attempt, calls = replies(error("rate_limited"), ok(2))  # when asked for: tried again
    policy = RetryPolicy(attempt_timeout=1, first_backoff=0.001, rate_limited_pause=0,
                         retry_codes=frozenset({"unavailable", "rate_limited"}))
    assert await with_retries(attempt, policy, reconnects=False) == {"seq": 2}


async def test_a_lost_socket_is_tried_again_only_when_the_client_reconnects() -> None:
    attempt, calls = replies(ConnectionLost(), ok(3))
    with pytest.raises(ConnectionLost):
        await with_retries(attempt, FAST, reconnects=False)
    attempt, calls = replies(ConnectionLost(), ok(3))
    assert await with_retries(attempt, FAST, reconnects=True) == {"seq": 3} and len(calls) == 2


async def test_tries_stop_at_the_policy_s_bound_raising_the_last_failure() -> None:
    attempt, calls = replies(*[error("unavailable")] * 10)
    with pytest.raises(ReplyError) as last:
        await with_retries(attempt, FAST, reconnects=False)
    assert last.value.code == "unavailable" and len(calls) == FAST.max_attempts
    attempt, calls = replies(RequestTimeout("slow"), ok(1))
    no_time = RetryPolicy(attempt_timeout=1, budget=0.0, max_attempts=100)
    with pytest.raises(RequestTimeout):
        await with_retries(attempt, no_time, reconnects=False)


async def test_the_push_queue_drops_the_oldest_when_nobody_reads_it_and_ends() -> None:
    queue = PushQueue(maxsize=2)
    for i in range(3):
        queue.deliver({"type": "typing", "data": {"i": i}})
    assert queue.dropped == 1
    assert await queue.next("typing") == {"i": 1}
    queue.end(ConnectionLost("gone"))
    with pytest.raises(ConnectionLost):
        async for push in queue.stream():
            assert push["data"] == {"i": 2}
    with pytest.raises(asyncio.TimeoutError):
        await queue.next("typing", timeout=0.05)
