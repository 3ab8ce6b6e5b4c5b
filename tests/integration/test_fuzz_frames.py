"""Hypothesis-generated frames on a logged-in socket: one documented reply each, never `internal`.

The fuzzed user (alice) has a friend (bob, on the other gateway), a stranger (carol), groups
(her own, bob's, carol's), messages and files in and out of her reach; the frames use those ids
as well as unknown ones and values of every wrong type. Each frame must get exactly one reply
carrying its id ("null" when the id could not be read), `ok` or a PROTOCOL.md error code other
than `internal` with a message, the check order of PROTOCOL.md (a frame whose envelope or
fields the contracts refuse is `bad_request`, an oversized one `too_large`), and the socket
stays open. Valid frames change state (messages sent, friendship removed, groups left): that
is allowed, and every so often bob repairs the friendship and the group memberships so that
the valid paths keep being exercised.

Generation is derandomized (no example database): CI runs the same frames every time. A
failure prints the frames of the failing example; shrinking is off because the server's state
moves on between examples, so a shrunk example would not replay the same way.
"""
import asyncio
import itertools
import os
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.contracts.envelope import ClientRequest
from shared.contracts.operations import CLIENT_OPERATIONS
from deploy.local.devstack import Stack
from tests.support.client import PASSWORD, Client, ReplyError, befriend, new_user
from tests.support.frames_strategy import (MAX_FRAME_BYTES, UNIQUE, Frame, Pools, any_frame, readable_id, serialise,
                                          strings)

CODES = {"bad_request", "unauthorized", "forbidden", "not_found", "conflict", "rate_limited", "too_large",
         "unavailable", "internal"}
REPLY_TIMEOUT = 12.0  # the RPC timeout in tests is 5 s: an `unavailable` comes well before this
REPAIR_EVERY = 20  # examples between repairs of the friendship and group memberships

FUZZ = settings(
    max_examples=int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "250")),
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture, HealthCheck.large_base_example],
    print_blob=False,
)

# Strategies over long boundary strings have long reprs; hypothesis warns about building them.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


async def upload(port: int, token: str, body: bytes, name: str) -> str:
    headers = {"Authorization": f"Bearer {token}", "X-File-Name": name, "Content-Type": "text/plain"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        reply = await http.post("/files", content=body, headers=headers)
    assert reply.status_code == 201, reply.text
    return reply.json()["file_id"]


@dataclass
class Sent:
    frame: Frame
    wire: str | bytes
    certain: bool
    expected_id: Any

    def show(self) -> str:
        text = self.wire if isinstance(self.wire, str) else repr(self.wire)
        return f"{text[:300]!r}{' ...(%d bytes)' % len(text.encode()) if len(text) > 300 else ''}"

    @property
    def size(self) -> int:
        return len(self.wire) if isinstance(self.wire, bytes) else len(self.wire.encode())


@dataclass
class Fuzzer:
    """A logged-in socket that sends frames and checks what comes back."""

    client: Client
    pools: Pools
    repair: Any  # async () -> None
    strategy: st.SearchStrategy[list[Frame]] | None = None
    ids: Any = field(default_factory=lambda: itertools.count(1))
    examples: int = 0
    frames: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.strategy is None:
            self.strategy = st.lists(any_frame(self.pools), min_size=1, max_size=4)

    async def exchange(self, frames: list[Frame]) -> list[str]:
        """Send the frames back to back; the problems with their replies (none: all is well)."""
        self.examples += 1
        if self.examples % REPAIR_EVERY == 0:
            await self.repair()
        sent: list[Sent] = []
        for frame in frames:
            wire = serialise(frame, f"fz{next(self.ids)}")
            certain, expected = readable_id(wire)
            sent.append(Sent(frame, wire, certain, expected))
            assert self.client.ws is not None
            await self.client.ws.send(wire)
        self.frames += len(sent)
        problems: list[str] = []
        replies = await self._collect(len(sent))
        waiting = list(sent)
        for reply in replies:
            match = next((s for s in waiting if reply.get("id") == s.expected_id
                          or (not s.certain and reply.get("id") is None)), None)
            if match is None:
                problems.append(f"a reply no frame of this example asked for (second reply?): {reply!r}")
                continue
            waiting.remove(match)
            problems += [f"{p}\n    frame: {match.show()}\n    reply: {reply!r}" for p in self._check(match, reply)]
        for s in waiting:
            problems.append(f"no reply within {REPLY_TIMEOUT} s (expected id {s.expected_id!r})\n    frame: {s.show()}")
        if self.client.closed.is_set():
            problems.append(f"the socket was closed ({self.client.ws.close_code} {self.client.ws.close_reason!r})"
                            f" after: {[s.show() for s in sent]}")
        return problems

    async def _collect(self, count: int) -> list[dict[str, Any]]:
        """The next `count` replies not claimed by a `Client.call` (pushes are skipped)."""
        box = self.client.unmatched_replies
        loop = asyncio.get_running_loop()
        until = loop.time() + REPLY_TIMEOUT
        while len(box) < count and loop.time() < until and not self.client.closed.is_set():
            await asyncio.sleep(0.002)
        got = box[:]
        box.clear()
        while not self.client.pushes.empty():  # pushes (message.new, presence, ...) are not replies
            self.client.pushes.get_nowait()
        return got

    def _check(self, s: Sent, reply: dict[str, Any]) -> list[str]:
        problems = []
        if reply.get("type") != "reply" or set(reply) - {"type", "id", "ok", "data", "error"}:
            problems.append("not a reply envelope")
        if reply.get("ok") is True:
            outcome = "ok"
            if not isinstance(reply.get("data"), dict):
                problems.append("ok without data")
        elif reply.get("ok") is False:
            error = reply.get("error")
            if not isinstance(error, dict) or set(error) != {"code", "message"}:
                return problems + ["error is not {code, message}"]
            outcome = error["code"]
            if error["code"] not in CODES:
                problems.append(f"undocumented code {error['code']!r}")
            if error["code"] == "internal":
                problems.append("internal")
            if not isinstance(error["message"], str) or not error["message"].strip():
                problems.append("empty error message")
        else:
            return problems + ["ok is neither true nor false"]
        op = s.frame.envelope.get("type") if isinstance(s.frame.envelope, dict) else None
        key = f"{op if isinstance(op, str) and op in CLIENT_OPERATIONS else '(other)'} {outcome}"
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        problems += self._check_order(s, reply, outcome)
        return problems

    def _check_order(self, s: Sent, reply: dict[str, Any], outcome: str) -> list[str]:
        """PROTOCOL.md's order: frame (size, JSON, envelope), known type, bound socket, fields."""
        if s.size > MAX_FRAME_BYTES:
            return [] if outcome == "too_large" else [f"{s.size} bytes answered {outcome}, not too_large"]
        if outcome == "too_large":
            return [f"{s.size} bytes (within 64 KiB) answered too_large"]
        if isinstance(s.wire, bytes):
            return [] if outcome == "bad_request" else [f"binary frame answered {outcome}"]
        try:
            raw = orjson.loads(s.wire)
            envelope = ClientRequest.model_validate(raw)
        except (orjson.JSONDecodeError, ValidationError):
            return [] if outcome == "bad_request" else [f"broken frame or envelope answered {outcome}"]
        operation = CLIENT_OPERATIONS.get(envelope.type)
        if operation is None:
            if outcome != "bad_request" or "type" not in reply["error"]["message"]:
                return [f"unknown type answered {outcome}, not bad_request naming the type"]
            return []
        try:
            operation.request.model_validate(envelope.data)
        except ValidationError:
            if outcome != "bad_request" or "data" not in reply["error"]["message"]:
                return [f"fields the contract refuses answered {outcome}, not bad_request naming the field"]
            return []
        if outcome == "ok" and operation.reply is not None:
            try:
                operation.reply.model_validate(reply["data"])
            except ValidationError as exc:
                return [f"reply data does not match {operation.reply.__name__}: {exc.errors()[0]}"]
        return []

    async def after(self) -> None:
        """Nothing more arrives; the socket answers; the state is consistent."""
        await asyncio.sleep(1.0)
        stray = self.client.unmatched_replies[:]
        assert not stray, f"replies that no frame was waiting for: {stray[:5]}"
        assert not self.client.closed.is_set()
        assert (await self.client.reply("ping"))["ok"] is True


@dataclass
class World:
    alice: Client
    bob: Client
    carol: Client
    groups: dict[str, str]  # alice's, bob's, carol's group ids
    pools: Pools


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(stack: Stack) -> Any:
    port, other = stack.gateway_ports
    alice, bob, carol = await new_user(port), await new_user(other), await new_user(port)
    await befriend(alice, bob)
    await befriend(bob, carol)
    own = await alice.call("groups.create", {"name": "alice's", "member_ids": [bob.user_id]})
    bobs = await bob.call("groups.create", {"name": "bob's", "member_ids": [alice.user_id]})
    carols = await carol.call("groups.create", {"name": "carol's", "member_ids": []})
    to_bob = await alice.send_text(bob.user_id, "hello bob")
    to_alice = await bob.send_text(alice.user_id, "hello alice")
    elsewhere = await carol.send_text(bob.user_id, "hello from carol")
    in_carols = await carol.call("message.send", {"to": {"group_id": carols["group_id"]}, "client_msg_id": "c1",
                                                  "text": "alone"})
    in_own = await alice.call("message.send", {"to": {"group_id": own["group_id"]}, "client_msg_id": "a1",
                                               "text": "hi all"})
    alice_file = await upload(port, alice.token, b"alice's notes", "notes.txt")
    carol_file = await upload(port, carol.token, b"carol's secret", "secret.txt")
    pools = Pools(
        self_id=alice.user_id, friend_id=bob.user_id, stranger_id=carol.user_id, username=alice.username,
        group_ids=[own["group_id"], bobs["group_id"], carols["group_id"]],
        conversation_ids=[to_bob["conversation_id"], elsewhere["conversation_id"], own["conversation_id"],
                          bobs["conversation_id"], carols["conversation_id"]],
        message_ids=[m["message_id"] for m in (to_bob, to_alice, elsewhere, in_carols, in_own)],
        file_ids=[alice_file, carol_file],
    )
    yield World(alice, bob, carol, {"alice": own["group_id"], "bob": bobs["group_id"], "carol": carols["group_id"]},
                pools)
    for client in (alice, bob, carol):
        await client.close()


async def documented(call: Any) -> None:
    """Run a setup call whose refusal is expected sometimes; `internal` never is."""
    try:
        await call
    except ReplyError as exc:
        assert exc.code in CODES - {"internal"}, exc


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzzer(world: World) -> Fuzzer:
    alice, bob = world.alice, world.bob

    async def repair() -> None:
        """Friends again, alice back in both groups: the valid paths stay reachable."""
        await documented(bob.call("friends.request", {"user_id": alice.user_id}))
        await documented(alice.call("friends.accept", {"user_id": bob.user_id}))
        for group_id in (world.groups["alice"], world.groups["bob"]):
            await documented(bob.call("groups.add_members", {"group_id": group_id, "user_ids": [alice.user_id]}))
        while not bob.pushes.empty():
            bob.pushes.get_nowait()

    return Fuzzer(alice, world.pools, repair)


@FUZZ
@given(data=st.data())
async def test_generated_frames_get_one_documented_reply_each(fuzzer: Fuzzer, data: st.DataObject) -> None:
    frames = data.draw(fuzzer.strategy, label="frames")
    problems = await fuzzer.exchange(frames)
    assert not problems, "\n".join(problems)


async def test_after_the_fuzz_the_socket_and_the_state_are_sane(fuzzer: Fuzzer, world: World) -> None:
    if fuzzer.frames == 0:
        pytest.skip("runs after test_generated_frames_get_one_documented_reply_each")
    print(f"\nfuzzed {fuzzer.examples} examples, {fuzzer.frames} frames:")
    for key, count in sorted(fuzzer.outcomes.items()):
        print(f"  {key}: {count}")
    await fuzzer.after()
    alice, bob = world.alice, world.bob
    # Friendship is symmetric whatever the frames did to it.
    mine, theirs = await alice.call("friends.list"), await bob.call("friends.list")
    i_have_bob = bob.user_id in {f["user_id"] for f in mine["friends"]}
    bob_has_me = alice.user_id in {f["user_id"] for f in theirs["friends"]}
    assert i_have_bob == bob_has_me, (mine, theirs)
    assert ({u["user_id"] for u in mine["outgoing"]} & {bob.user_id}) == (
        {u["user_id"] for u in theirs["incoming"]} & {alice.user_id})
    # Every group alice lists has her among its members, with the role the list gives.
    for group in (await alice.call("groups.list"))["groups"]:
        members = (await alice.call("groups.members", {"group_id": group["group_id"]}))["members"]
        roles = {m["user_id"]: m["role"] for m in members}
        assert roles.get(alice.user_id) == group["role"], (group, members)
        assert sum(1 for r in roles.values() if r == "owner") == 1, members
    # The direct conversation's history is in ascending seq, within last_seq.
    conversations = (await alice.call("conversations.list"))["conversations"]
    for conversation in conversations:
        history = await alice.call("history.fetch", {"conversation_id": conversation["conversation_id"], "limit": 200})
        seqs = [m["seq"] for m in history["messages"]]
        assert seqs == sorted(set(seqs)) and all(s <= conversation["last_seq"] for s in seqs), conversation
    # And the friendship still works end to end.
    await documented(bob.call("friends.request", {"user_id": alice.user_id}))
    await documented(alice.call("friends.accept", {"user_id": bob.user_id}))
    sent = await alice.send_text(bob.user_id, "still here")
    # bob's queue still holds pushes of the fuzz (alice's valid sends): this one, not any.
    while (await bob.next_push("message.new", timeout=10))["message_id"] != sent["message_id"]:
        pass


# --- auth.login and auth.resume rebind the socket: their own socket and user -------------------
@dataclass
class Session:
    client: Client
    token: str
    fuzzer: Fuzzer | None = None


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def dave(stack: Stack) -> Any:
    client = await new_user(stack.gateway_ports[0])
    yield Session(client, client.token)
    await client.close()


def session_frames(username: str, token: str) -> st.SearchStrategy[list[Frame]]:
    devices = st.one_of(st.sampled_from(["default", "phone", "tablet", "x" * 64, "x" * 65, "", " ", "é", "a b"]),
                        st.one_of(*strings(1, 64)), st.integers(), st.none())
    login = st.fixed_dictionaries(
        {"username": st.one_of(st.sampled_from([username, username.upper(), f" {username} ", "nobody_here"]),
                               st.one_of(*strings(1, 128)), st.integers(), st.none()),
         "password": st.one_of(st.just(PASSWORD), st.just(PASSWORD), st.one_of(*strings(1, 128)), st.integers())},
        optional={"device_id": devices, "extra": st.booleans()})
    resume = st.fixed_dictionaries(
        {"token": st.one_of(st.just(token), st.just(token), st.just(token[:-2]), st.just(token + "x"),
                            st.one_of(*strings(1, 4096)), st.sampled_from(["x" * 4096, "x" * 4097, "a.b.c", ""]), st.none(),
                            st.integers())},
        optional={"device_id": devices, "extra": st.booleans()})
    one = st.one_of(
        st.builds(lambda d: Frame(envelope={"type": "auth.login", "id": UNIQUE, "data": d}), login),
        st.builds(lambda d: Frame(envelope={"type": "auth.resume", "id": UNIQUE, "data": d}), resume),
        st.just(Frame(envelope={"type": "friends.list", "id": UNIQUE, "data": {}})),
        st.just(Frame(envelope={"type": "ping", "id": UNIQUE, "data": {}})),
    )
    return st.lists(one, min_size=1, max_size=3)


@settings(FUZZ, max_examples=int(os.environ.get("PARLEY_FUZZ_SESSION_EXAMPLES", "60")))
@given(data=st.data())
async def test_generated_logins_and_resumes_get_one_documented_reply_each(dave: Session, data: st.DataObject) -> None:
    client = dave.client
    fuzz = dave.fuzzer
    if fuzz is None:
        async def repair() -> None:
            pass
        pools = Pools(self_id=client.user_id, friend_id="", stranger_id="", username=client.username,
                      group_ids=[], conversation_ids=[], message_ids=[], file_ids=[])
        strategy = session_frames(client.username, dave.token)
        fuzz = dave.fuzzer = Fuzzer(client, pools, repair, strategy)
    frames = data.draw(fuzz.strategy, label="frames")
    problems = await fuzz.exchange(frames)
    assert not problems, "\n".join(problems)
    # Whatever happened, a login with the right password binds the socket again.
    reply = await client.reply("auth.login", {"username": client.username, "password": PASSWORD})
    assert reply["ok"] is True or reply["error"]["code"] == "rate_limited", reply
