"""--burst N: one device sends N messages back to back to an offline friend, then the friend logs in.

Why this shape: it is the one-device pipeline of issue 12 (a device's sends are stored in the
order sent, so how fast one socket can push is the per-message round trip unless sends are
batched), and then the catch-up a phone does after a flight. IN_FLIGHT (64, the gateway's
per-socket limit of requests in flight) sends are kept outstanding by as many lanes, each
retrying `unavailable` and timeouts with the same client_msg_id. Figures: first send -> every
reply ok (stored and answered); then the friend's login reply -> all N delivered (unique
seqs of the conversation) and -> `sync.done`.
"""
import asyncio
import secrets
import time
from typing import Any

from bench.load import connect_user
from bench.pairs import Tally, send_retrying
from bench.stack import progress_lines
from bench.wsclient import BenchClient, befriend, stamped_text

IN_FLIGHT = 64


async def burst_run(ws_url: str, count: int, size: int = 100, in_flight: int = IN_FLIGHT) -> dict[str, Any]:
    print(f"burst: one device sends {count:,} messages ({in_flight} in flight) to an offline friend ...", flush=True)
    sender = await connect_user(ws_url, "bs")
    friend = await connect_user(ws_url, "bf", device="phone")
    await befriend(sender, friend)
    await friend.close()  # offline; its device "phone" is known to chat
    tally = Tally()
    stored: list[tuple[str, int]] = []
    todo = iter(range(count))
    t0 = time.perf_counter()

    async def lane() -> None:
        for _ in todo:
            cmid = secrets.token_hex(8)
            ok, data = await send_retrying(sender, {"to": {"user_id": friend.user_id}, "client_msg_id": cmid,
                                                    "text": stamped_text(cmid, size)}, tally)
            if ok:
                stored.append((data["conversation_id"], data["seq"]))

    async with progress_lines("burst", 1, lambda: f"stored {len(stored):6d} / {count}"):
        await asyncio.gather(*(lane() for _ in range(in_flight)))
    send_seconds = time.perf_counter() - t0
    await sender.close()

    device = await BenchClient(ws_url).connect()
    device.username, device.user_id = friend.username, friend.user_id
    conversation = stored[0][0] if stored else ""
    all_in: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def on_message(data: dict[str, Any], now: int) -> None:
        # The friend has this one conversation: every message it gets is the burst's.
        if not all_in.done() and device.received >= len(stored):
            all_in.set_result(time.perf_counter())

    device.on_message = on_message
    done = device.expect("sync.done")
    await device.login("phone")
    replied = time.perf_counter()
    summary = await asyncio.wait_for(done, 600)
    synced = time.perf_counter()
    delivered_at = all_in.result() if all_in.done() else None
    received = device.session.inbox.received_in(conversation)
    await device.close()
    return {
        "messages": count, "in_flight": in_flight, "stored": len(stored), "errors": tally.errors,
        "retries": tally.retries, "send_seconds": round(send_seconds, 3),
        "stored_per_second": round(len(stored) / max(send_seconds, 1e-9), 1),
        "login_to_all_delivered_seconds": round(delivered_at - replied, 3) if delivered_at else None,
        "login_to_sync_done_seconds": round(synced - replied, 3), "sync_done_count": summary.get("count"),
        "received_unique": received, "duplicated": device.duplicates,
        "ok": len(stored) == count and received == count,
    }


def burst_table(r: dict[str, Any]) -> str:
    return "\n".join([
        f"burst: {r['messages']:,} messages from one device, {r['in_flight']} in flight, to an offline friend",
        f"  all stored and answered      {r['send_seconds']:>8.3f} s   ({r['stored_per_second']:,.1f} msg/s; "
        f"stored {r['stored']:,}, retries {r['retries']}, errors {r['errors'] or 0})",
        f"  friend login -> all delivered {r['login_to_all_delivered_seconds'] if r['login_to_all_delivered_seconds'] is not None else '-':>8} s",
        f"  friend login -> sync.done     {r['login_to_sync_done_seconds']:>8.3f} s   (count {r['sync_done_count']}, "
        f"received {r['received_unique']:,}, duplicated {r['duplicated']})",
    ])
