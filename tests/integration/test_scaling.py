"""Independent scaling: two gateways and three chat replicas, on a stack of their own.

Users spread over both gateways write to their friend and to a group of all of them, each
sending one message after the other, as an app does: a send cut off (socket gone, `unavailable`,
timeout) is sent again with its client_msg_id after reconnecting to any gateway. Mid-stream a
gateway and a chat replica are killed (SIGKILL) and started again, or one of them is stopped
(SIGTERM). Afterwards what the users saw is checked against what was stored: every
acknowledged message stored once, seq 1..N without gaps, each user holding exactly the stored
messages of their conversations, each sender's messages arriving in the order sent.
"""
import asyncio
import re
import secrets
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import Any

import httpx
import pytest
import websockets
from pymongo import AsyncMongoClient

from deploy.local.devstack import Stack
from shared.settings import Settings
from tests.support.client import Client, ReplyError, befriend
from tests.support.infra import LOG_DIR, stack_of_its_own, wait_until_ready
from tests.support.waiting import eventually

pytestmark = pytest.mark.faults

LOG_PATH = LOG_DIR / "scaling.log"
DRAIN_SECONDS = 1.0  # how long a stopping gateway answers /readyz 503 before closing its port
PACE = 0.02  # between one user's sends
WARM_UP = 60  # acknowledged sends before the fault
AFTER = 1.0  # seconds of traffic once the faulty processes are back
MORE = 51  # and at least this many sends acknowledged since the fault began: it lands mid-stream
SWEEP_EVERY = 0.2  # chat's expired-message sweep, a job run once across replicas
DROPPED = (ConnectionError, websockets.ConnectionClosed, asyncio.TimeoutError)


@pytest.fixture(scope="module")
async def scaled(test_env: dict[str, str]) -> AsyncIterator[tuple[Stack, Settings]]:
    """auth, files, three chat replicas and two gateways, in a namespace and database of their own."""
    overrides = {"PARLEY_GATEWAY_DRAIN_SECONDS": str(DRAIN_SECONDS), "PARLEY_EXPIRED_SWEEP_SECONDS": str(SWEEP_EVERY)}
    async with stack_of_its_own(test_env, "scaling", overrides, gateways=2, chats=3, expose_metrics=True) as stack_and_settings:
        yield stack_and_settings


# --- a user as an app runs one -------------------------------------------------------------------
class Socket(Client):
    """One socket of a user: messages go to the user's store; first arrivals noted in order."""

    def __init__(self, port: int, user: "User"):
        super().__init__(port)
        self.user = user
        self.inbox = user.inbox  # Client.ack_all acks from what the user holds
        self.firsts: list[tuple[str, int, str]] = []  # (conversation, seq, sender) as first seen here
        self._seen: set[tuple[str, int]] = set()

    def _keep(self, message: dict[str, Any]) -> None:
        key = (message["conversation_id"], message["seq"])
        self.user.hold(message)
        if key not in self._seen:
            self._seen.add(key)
            self.firsts.append((*key, message["from_user_id"]))


class User:
    """One device; reconnects to the next gateway that lets it in, resumes with its token, syncs."""

    def __init__(self, name: str, ports: list[int], at: int):
        self.name, self.ports, self.at = name, ports, at
        self.inbox: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        self.sockets: list[Socket] = []
        self.duplicates = 0  # the same (conversation, seq) again: live + sync overlap, retried sends
        self.conflicts: list[tuple[dict[str, Any], dict[str, Any]]] = []  # same seq, another message
        self.retries = 0
        self.sent: dict[str, list[int]] = defaultdict(list)  # conversation -> seqs, in the order sent
        self.user_id = self.token = ""

    @property
    def client(self) -> Socket:
        return self.sockets[-1]

    def hold(self, message: dict[str, Any]) -> None:
        held = self.inbox[message["conversation_id"]]
        earlier = held.get(message["seq"])
        if earlier is None:
            held[message["seq"]] = message
        else:
            self.duplicates += 1
            if earlier["message_id"] != message["message_id"]:
                self.conflicts.append((earlier, message))

    async def _open(self, index: int) -> Socket:
        sock = Socket(self.ports[index], self)
        await sock.connect()
        self.sockets.append(sock)
        self.at = index
        return sock

    async def start(self) -> "User":
        sock = await self._open(self.at)
        await sock.register(f"{self.name}_{secrets.token_hex(4)}")
        await sock.login("app")
        self.user_id, self.token = sock.user_id or "", sock.token or ""
        await sock.wait_synced()
        return self

    async def reconnect(self) -> None:
        """The next gateway first, then round the list, until one takes the socket and syncs it."""
        with suppress(Exception):
            await asyncio.wait_for(self.client.close(), 5)
        index = self.at
        deadline = time.monotonic() + 30
        while True:
            index = (index + 1) % len(self.ports)
            try:
                sock = await self._open(index)
                await sock.call("auth.resume", {"token": self.token}, timeout=10)
                await sock.wait_synced(timeout=10)
                return
            except (OSError, websockets.InvalidStatus, ReplyError, *DROPPED) as exc:
                assert time.monotonic() < deadline, f"{self.name} could not reconnect: {exc!r}"
                await asyncio.sleep(0.2)

    async def send(self, to: dict[str, str], text: str, client_msg_id: str) -> dict[str, Any]:
        """message.send until answered; the same client_msg_id every time."""
        data = {"to": to, "client_msg_id": client_msg_id, "text": text}
        for _ in range(50):
            try:
                reply = await self.client.call("message.send", data, timeout=10)
            except ReplyError as exc:
                if exc.code != "unavailable":
                    raise
                self.retries += 1
                await asyncio.sleep(0.2)
                continue
            except DROPPED:
                self.retries += 1
                await self.reconnect()
                continue
            # The app shows its own message at once, under the seq the reply gave it.
            mine = {**reply, "from_user_id": self.user_id, "text": text, "to": to}
            self.inbox[reply["conversation_id"]].setdefault(reply["seq"], mine)
            self.sent[reply["conversation_id"]].append(reply["seq"])
            return reply
        raise AssertionError(f"{client_msg_id} never answered")

    async def ack(self) -> None:
        with suppress(ReplyError, *DROPPED):
            await self.client.ack_all()


class Crowd:
    """Four users alternating between the gateways: two pairs of friends and a group of all four."""

    def __init__(self, users: list[User], friend: dict[str, User], group_id: str):
        self.users, self.friend, self.group_id = users, friend, group_id
        self.acked: dict[str, dict[str, Any]] = {}  # client_msg_id -> reply
        self.texts: dict[str, str] = {}  # client_msg_id -> text
        self.members: dict[str, set[str]] = {}  # conversation -> its users' names
        self.done = asyncio.Event()

    @classmethod
    async def gather(cls, ports: list[int]) -> "Crowd":
        tag = secrets.token_hex(3)
        users = [await User(f"u{i}{tag}", ports, i % len(ports)).start() for i in range(4)]
        friend: dict[str, User] = {}
        for a, b in ((users[0], users[1]), (users[2], users[3])):
            await befriend(a.client, b.client)
            friend[a.name], friend[b.name] = b, a
        created = await users[0].client.call(
            "groups.create", {"name": f"all {tag}", "member_ids": [u.user_id for u in users[1:]]}
        )
        for u in users[1:]:
            await u.client.next_push("group.added")
        return cls(users, friend, created["group_id"])

    async def _talk(self, user: User) -> None:
        i = 0
        while not self.done.is_set():
            to = {"group_id": self.group_id} if i % 2 else {"user_id": self.friend[user.name].user_id}
            cmid = f"{user.name}-{i}"
            self.texts[cmid] = f"{cmid} {secrets.token_hex(4)}"
            reply = self.acked[cmid] = await user.send(to, self.texts[cmid], cmid)
            everyone = {u.name for u in self.users}
            self.members[reply["conversation_id"]] = everyone if i % 2 else {user.name, self.friend[user.name].name}
            i += 1
            if i % 20 == 0:
                await user.ack()
            await asyncio.sleep(PACE)

    async def talk_through(self, fault: Callable[[], Awaitable[None]]) -> int:
        """Everyone talks; after WARM_UP acknowledged sends `fault` runs; AFTER seconds more, and
        until MORE sends were acknowledged since the fault began (however slow the machine).
        Returns how many were acknowledged before the fault."""
        talkers = [asyncio.create_task(self._talk(u)) for u in self.users]
        deadline = time.monotonic() + 30
        while len(self.acked) < WARM_UP:
            assert time.monotonic() < deadline and not any(t.done() for t in talkers), "no traffic"
            await asyncio.sleep(0.01)
        before = len(self.acked)
        try:
            await fault()
            await asyncio.sleep(AFTER)
            await eventually(lambda: len(self.acked) >= before + MORE or any(t.done() for t in talkers),
                             f"{MORE} sends acknowledged since the fault began")
        finally:
            self.done.set()
        await asyncio.gather(*talkers)
        return before

    async def settle(self) -> None:
        """Everyone online again, holding up to each conversation's last acknowledged seq."""
        last: dict[str, int] = defaultdict(int)
        for reply in self.acked.values():
            last[reply["conversation_id"]] = max(last[reply["conversation_id"]], reply["seq"])
        for user in self.users:
            if user.client.closed.is_set():
                await user.reconnect()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(len(u.inbox[c]) >= last[c] for u in self.users for c in self.conversations_of(u)):
                return
            await asyncio.sleep(0.1)

    def conversations_of(self, user: User) -> list[str]:
        return [c for c, names in self.members.items() if user.name in names]

    async def check(self, settings: Settings) -> str:
        """Assert that nothing was lost, stored twice or shown out of order; a summary line."""
        stored = await self._stored_once(settings)
        for cmid, reply in self.acked.items():  # each acknowledged send is the stored message
            message = stored[reply["conversation_id"]][reply["seq"]]
            assert (message["message_id"], message["text"]) == (reply["message_id"], self.texts[cmid])
        inversions = 0
        for user in self.users:
            # What the user holds (received once or more, and its own sends) is exactly what was stored.
            for conversation_id in self.conversations_of(user):
                held = {seq: m["message_id"] for seq, m in user.inbox[conversation_id].items()}
                expected = {seq: m["message_id"] for seq, m in stored[conversation_id].items()}
                assert held == expected, (user.name, conversation_id, sorted(set(expected) ^ set(held))[:20])
            assert user.conflicts == [], user.conflicts[:3]
            for conversation_id, seqs in user.sent.items():  # stored in the order sent
                assert seqs == sorted(set(seqs)), (user.name, conversation_id)
            for sock in user.sockets:  # each sender's messages reach each socket in the order sent
                last: dict[tuple[str, str], int] = {}
                highest: dict[str, int] = {}
                for conversation_id, seq, sender in sock.firsts:
                    assert seq > last.get((conversation_id, sender), 0), (user.name, conversation_id, sender, seq)
                    last[(conversation_id, sender)] = seq
                    # Across senders a live push may overtake another (stored by another replica):
                    # counted, not an error; clients order by seq.
                    inversions += seq < highest.get(conversation_id, 0)
                    highest[conversation_id] = max(seq, highest.get(conversation_id, 0))
        return (
            f"{len(self.acked)} messages in {len(stored)} conversations; "
            f"retried sends {sum(u.retries for u in self.users)}, "
            f"reconnects {sum(len(u.sockets) - 1 for u in self.users)}, "
            f"duplicates dropped {sum(u.duplicates for u in self.users)}, "
            f"live pushes overtaking another sender's {inversions}"
        )

    async def _stored_once(self, settings: Settings) -> dict[str, dict[int, dict[str, Any]]]:
        """history.fetch of every conversation: seq 1..N, no gaps; each client_msg_id stored once."""
        by_name = {u.name: u for u in self.users}
        stored: dict[str, dict[int, dict[str, Any]]] = {}
        for conversation_id, names in self.members.items():
            member = by_name[min(names)]
            messages: list[dict[str, Any]] = []
            before: int | None = None
            while True:
                page = await member.client.call("history.fetch", {
                    "conversation_id": conversation_id, "limit": 200, **({"before_seq": before} if before else {})
                })
                messages = page["messages"] + messages
                if not page["has_more"]:
                    break
                before = page["messages"][0]["seq"]
            assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1)), conversation_id
            stored[conversation_id] = {m["seq"]: m for m in messages}
        assert sum(len(m) for m in stored.values()) == len(self.acked)  # nothing beyond what was acknowledged
        texts = [m["text"] for messages in stored.values() for m in messages.values()]
        assert sorted(texts) == sorted(self.texts[c] for c in self.acked)
        mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
        try:
            docs = await mongo[settings.mongo_db]["messages"].find(
                {"conversation_id": {"$in": sorted(self.members)}}, {"from_user_id": 1, "client_msg_id": 1}
            ).to_list(None)
        finally:
            await mongo.close()
        keys = [(d["from_user_id"], d["client_msg_id"]) for d in docs]
        assert len(keys) == len(set(keys)) == len(self.acked)
        return stored


async def kill_and_restart_gateway2_and_chat2(stack: Stack) -> None:
    """SIGKILL the second gateway and chat replica; half a second later, start them again."""
    stack.procs["gateway2"].kill()
    stack.procs["chat2"].kill()
    await asyncio.sleep(0.5)
    stack.service("chat", 1)
    stack.service("gateway", 1)
    await wait_until_ready(stack.gateway_ports[1])


async def close_all(crowd: Crowd) -> None:
    for user in crowd.users:
        with suppress(Exception):
            await user.client.close()


# --- the tests -----------------------------------------------------------------------------------
# The same kill (gateway2 + chat2 mid-stream) is in make test as the pipelined devices' test
# below, and single kills of a gateway and of chat in test_faults.py; this one (users moving to
# the other gateway and back, each holding exactly what was stored) runs in make chaos.
@pytest.mark.chaos
async def test_users_on_two_gateways_lose_nothing_when_a_gateway_and_a_chat_replica_crash(
    scaled: tuple[Stack, Settings],
) -> None:
    stack, settings = scaled
    crowd = await Crowd.gather(stack.gateway_ports)

    homeless = [u for u in crowd.users if u.at == 1]

    async def crash() -> None:
        await kill_and_restart_gateway2_and_chat2(stack)
        # Its users, moved to the other gateway meanwhile, go back to the restarted one (their
        # app's next reconnect picks it) and talk through it for the rest of the stream.
        await eventually(lambda: all(u.at == 0 and not u.client.closed.is_set() for u in homeless),
                         "the users of the killed gateway reconnecting to the other one")
        for user in homeless:
            assert user.client.ws is not None
            await user.client.ws.close()

    before = await crowd.talk_through(crash)
    await crowd.settle()
    summary = await crowd.check(settings)
    print(f"\n[scaling] SIGKILL gateway2 + chat2 after {before} sends: {summary}")
    assert before < len(crowd.acked) - 50, "the crash should land mid-stream"
    first, second = stack.gateway_ports[1], stack.gateway_ports[0]
    for user in homeless:  # killed, moved over, moved back
        ports = [s.port for s in user.sockets]
        assert ports[0] == first and second in ports and ports[-1] == first, (user.name, ports)
    await close_all(crowd)


async def test_sigterm_drains_a_gateway_its_users_reconnect_elsewhere_and_lose_nothing(
    scaled: tuple[Stack, Settings],
) -> None:
    stack, settings = scaled
    port = stack.gateway_ports[1]
    crowd = await Crowd.gather(stack.gateway_ports)
    idle = await User("idle", stack.gateway_ports, 1).start()  # on the drained gateway, sending nothing
    watcher = crowd.users[0]  # on the other gateway
    await befriend(watcher.client, idle.client)
    statuses: list[tuple[float, int | str]] = []
    closed: dict[str, tuple[float, int | None]] = {}
    timing: dict[str, Any] = {}

    async def poll_readyz(t0: float) -> None:
        async with httpx.AsyncClient(timeout=1) as http:
            while True:
                try:
                    status: int | str = (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code
                except httpx.TimeoutException:
                    continue  # a slow answer (a loaded machine) says nothing of the port: ask again
                except httpx.TransportError as exc:
                    statuses.append((time.monotonic() - t0, type(exc).__name__))
                    return
                statuses.append((time.monotonic() - t0, status))
                if status == 503 and "refused_with" not in timing:
                    try:
                        await (await websockets.connect(f"ws://127.0.0.1:{port}/ws")).close()
                        timing["refused_with"] = "accepted"
                    except websockets.InvalidStatus as exc:
                        timing["refused_with"] = exc.response.status_code
                    except OSError:
                        pass  # the port closed meanwhile
                await asyncio.sleep(0.05)

    async def watch(user: User, sock: Socket, t0: float) -> None:
        await sock.closed.wait()
        closed[user.name] = (time.monotonic() - t0, sock.ws.close_code if sock.ws else None)

    async def offline_announced(t0: float) -> float:
        while True:
            push = await watcher.client.next_push("presence", timeout=10)
            if push["user_id"] == idle.user_id and push["online"] is False:
                return time.monotonic() - t0

    async def drain() -> None:
        proc = stack.procs["gateway2"]
        assert proc.popen is not None
        on_it = [(u, u.client) for u in crowd.users + [idle] if u.at == 1]
        t0 = time.monotonic()
        proc.popen.send_signal(signal.SIGTERM)
        watchers = [asyncio.create_task(watch(u, s, t0)) for u, s in on_it]
        poller = asyncio.create_task(poll_readyz(t0))
        announced = asyncio.create_task(offline_announced(t0))
        timing["exit_code"] = await asyncio.to_thread(proc.popen.wait, 15)
        timing["exited_after"] = time.monotonic() - t0
        await asyncio.wait_for(asyncio.gather(*watchers, poller), 5)
        timing["offline_after"] = await asyncio.wait_for(announced, 5)
        stack.service("gateway", 1)
        await wait_until_ready(port)

    before = await crowd.talk_through(drain)
    await crowd.settle()
    summary = await crowd.check(settings)
    print(f"\n[scaling] SIGTERM gateway2 after {before} sends: closed {closed}, readyz {statuses[:3]}..."
          f"{statuses[-2:]}, {timing}; {summary}")

    assert len(closed) == 3 and all(code == 1012 and after < 2 for after, code in closed.values()), closed
    codes = [s for _, s in statuses]
    assert 503 in codes, statuses
    first_503 = codes.index(503)
    assert statuses[first_503][0] < 0.5, statuses  # out of rotation at once
    assert set(codes[first_503:-1]) == {503} and isinstance(codes[-1], str), statuses  # then the port closes
    assert statuses[-1][0] >= DRAIN_SECONDS * 0.9, statuses
    assert timing["refused_with"] == 503
    assert timing["offline_after"] < 1.5  # removed by the drain, not left to expire (3 s here)
    assert timing["exit_code"] == 0 and timing["exited_after"] < DRAIN_SECONDS + 5, timing
    assert all(len(u.sockets) > 1 for u in crowd.users if u.sockets[0].port == port)
    await close_all(crowd)
    await idle.client.close()


async def test_sigterm_stops_a_chat_replica_cleanly_with_no_command_lost(scaled: tuple[Stack, Settings]) -> None:
    stack, settings = scaled
    crowd = await Crowd.gather(stack.gateway_ports)
    outcome: dict[str, Any] = {}

    async def stop_chat() -> None:
        proc = stack.procs["chat1"]
        assert proc.popen is not None
        t0 = time.monotonic()
        proc.popen.send_signal(signal.SIGTERM)
        outcome["exit_code"] = await asyncio.to_thread(proc.popen.wait, 30)
        outcome["exited_after"] = time.monotonic() - t0
        await asyncio.sleep(0.3)  # a moment on two replicas
        stack.service("chat", 0)

    before = await crowd.talk_through(stop_chat)
    await crowd.settle()
    summary = await crowd.check(settings)
    print(f"\n[scaling] SIGTERM chat1 after {before} sends: {outcome}; {summary}")
    assert outcome["exit_code"] == 0 and outcome["exited_after"] < settings.shutdown_timeout_seconds, outcome

    def stopped() -> list[str]:
        """chat1's last words, as copied to the log by the stack's output threads."""
        return [line for line in LOG_PATH.read_text().splitlines()
                if line.startswith("chat1 ") and '"service.stopped"' in line]

    lines = await eventually(stopped, "chat1's service.stopped line in the stack's log")
    assert re.search(r'"unfinished":\s*0', lines[-1]), lines
    await close_all(crowd)


# --- devices that pipeline their sends (issue 12: batches in flight when processes die) --------
WINDOW = 4  # message.sends one device has in flight at once
ROUND_PACE = 0.25  # between one device's rounds of WINDOW sends


class Pipelining:
    """A device sending WINDOW messages at a time without waiting for each reply, as a fast app
    does. A round that fails anywhere (socket gone, `unavailable`) is sent again, in order, from
    its first unanswered message with the same client_msg_ids, after reconnecting if needed."""

    def __init__(self, user: User, to: User):
        self.user, self.to = user, to
        self.replies: dict[int, dict[str, Any]] = {}  # send index -> the reply it got
        self.texts: dict[int, str] = {}

    async def run(self, done: asyncio.Event) -> None:
        """Until `done`, and then until nothing it sent is left unanswered."""
        i, unfinished = 0, False
        while unfinished or not done.is_set():
            indexes = list(range(i, i + WINDOW))
            for k in indexes:
                self.texts.setdefault(k, f"{self.user.name}-{k} {secrets.token_hex(3)}")
            sends = [
                self.user.client.call("message.send", {
                    "to": {"user_id": self.to.user_id}, "client_msg_id": f"{self.user.name}-{k}", "text": self.texts[k],
                }, timeout=10)
                for k in indexes
            ]
            results = await asyncio.gather(*sends, return_exceptions=True)
            for k, result in zip(indexes, results, strict=False):
                if isinstance(result, dict):
                    self.replies[k] = result
            failed = [(k, r) for k, r in zip(indexes, results, strict=False) if not isinstance(r, dict)]
            unfinished = bool(failed)
            if not failed:
                i += WINDOW
                await asyncio.sleep(ROUND_PACE)
                continue
            self.user.retries += 1
            i = failed[0][0]
            unexpected = [r for _, r in failed if not isinstance(r, (ReplyError, *DROPPED))]
            assert not unexpected and all(r.code == "unavailable" for _, r in failed if isinstance(r, ReplyError)), failed
            if any(isinstance(r, DROPPED) for _, r in failed) or self.user.client.closed.is_set():
                await self.user.reconnect()
            else:
                await asyncio.sleep(0.2)


async def test_pipelined_devices_lose_nothing_and_keep_their_order_when_a_gateway_and_a_chat_replica_crash(
    scaled: tuple[Stack, Settings],
) -> None:
    stack, settings = scaled
    tag = secrets.token_hex(3)
    users = [await User(f"p{i}{tag}", stack.gateway_ports, i % 2).start() for i in range(20)]
    for a, b in zip(users[0::2], users[1::2], strict=False):
        await befriend(a.client, b.client)
    devices = [Pipelining(a, b) for a, b in zip(users[0::2], users[1::2], strict=False)] + [
        Pipelining(b, a) for a, b in zip(users[0::2], users[1::2], strict=False)
    ]
    done = asyncio.Event()
    senders = [asyncio.create_task(d.run(done)) for d in devices]

    async def answered_at_least(n: int) -> int:
        """Wait (on a busy machine, as long as it takes, up to 30 s) for n sends answered."""
        deadline = time.monotonic() + 30
        while (answered := sum(len(d.replies) for d in devices)) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return answered

    before = await answered_at_least(101)
    await kill_and_restart_gateway2_and_chat2(stack)
    await answered_at_least(before + 101)
    done.set()
    await asyncio.wait_for(asyncio.gather(*senders), 60)
    total = sum(len(d.replies) for d in devices)
    assert before > 100 and total > before + 100, (before, total)

    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
    try:
        for device in devices:
            stored = await mongo[settings.mongo_db]["messages"].find(
                {"from_user_id": device.user.user_id}, {"seq": 1, "client_msg_id": 1, "text": 1, "conversation_id": 1}
            ).to_list(None)
            by_cmid = {d["client_msg_id"]: d for d in stored}
            # Every answered send is stored once, as answered; nothing unanswered is stored.
            assert len(by_cmid) == len(stored) == len(device.replies), (device.user.name, len(stored), len(device.replies))
            for k, reply in device.replies.items():
                doc = by_cmid[f"{device.user.name}-{k}"]
                assert (doc["seq"], doc["text"]) == (reply["seq"], device.texts[k])
            # In the order sent: a later send never holds a lower seq.
            seqs = [device.replies[k]["seq"] for k in sorted(device.replies)]
            assert seqs == sorted(seqs), (device.user.name, seqs)
        # Each pair's conversation: seq 1..N without a gap, N = both devices' answered sends.
        for a, b in zip(devices[:10], devices[10:], strict=False):
            conversation_id = next(iter(a.replies.values()))["conversation_id"]
            seqs = sorted([d["seq"] async for d in mongo[settings.mongo_db]["messages"].find(
                {"conversation_id": conversation_id}, {"seq": 1})])
            assert seqs == list(range(1, len(a.replies) + len(b.replies) + 1)), conversation_id
    finally:
        await mongo.close()
    print(f"\n[scaling] pipelined x{WINDOW}, SIGKILL gateway2 + chat2 after {before} sends: {total} answered, "
          f"rounds sent again {sum(u.retries for u in users)}, reconnects {sum(len(u.sockets) - 1 for u in users)}")
    for user in users:
        with suppress(Exception):
            await user.client.close()


# --- jobs run once across replicas ---------------------------------------------------------------
async def periodic_runs(stack: Stack, job: str) -> dict[str, int]:
    """Runs of `job` per chat replica so far, from each replica's /metrics."""
    runs: dict[str, int] = {}
    pattern = re.compile(rf'^parley_periodic_runs_total\{{job="{re.escape(job)}"\}} ([0-9.e+]+)$', re.M)
    async with httpx.AsyncClient() as http:
        for key, port in stack.metrics_ports.items():
            if key.startswith("chat"):
                found = pattern.search((await http.get(f"http://127.0.0.1:{port}/metrics")).text)
                runs[key] = int(float(found.group(1))) if found else 0
    return runs


async def test_three_chat_replicas_sweep_expired_messages_once_per_round_not_three_times(
    scaled: tuple[Stack, Settings],
) -> None:
    """The sweep deletes what expired; three replicas each sweeping is three times the database
    work. Over a window, the runs summed over the replicas are about one per period (each run
    every 0.15-0.25 s), where three replicas each running it would make about three."""
    stack, _ = scaled
    await eventually(lambda: _runs_started(stack), "a first sweep", timeout=10)
    window = 3.0
    before = await periodic_runs(stack, "expired.sweep")
    await asyncio.sleep(window)
    after = await periodic_runs(stack, "expired.sweep")
    ran = {key: after[key] - before.get(key, 0) for key in after}
    assert len(ran) == 3, ran
    most_one_runner = window / (SWEEP_EVERY * 0.75) + 2  # a handover mid-window may add a run
    assert 0 < sum(ran.values()) <= most_one_runner, ran


async def _runs_started(stack: Stack) -> bool:
    return sum((await periodic_runs(stack, "expired.sweep")).values()) > 0
