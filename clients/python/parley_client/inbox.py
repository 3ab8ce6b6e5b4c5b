"""What a device holds of each conversation, by (conversation_id, seq): PROTOCOL.md's rules for
clients, in one place.

- Duplicates are dropped by (conversation_id, seq): delivery is at-least-once (a sync overlaps
  live pushes, a retried send pushes its message again).
- A device acknowledges, per conversation, the highest seq below which it holds everything
  (docs/protocol.md, "Acknowledging and gaps"): holding 1-5 and 7, it acks 5.

Where the unbroken run starts is the device's cursor, which the server does not say. It is known
(the "floor": everything up to it is held, or was acknowledged by this device) when:
1. seq 1 is held: the run starts at the conversation's start;
2. a bind's sync brings the conversation: the sync starts just above the cursor;
3. a bind's sync does not bring a conversation held: the cursor is above everything held.
Otherwise (a conversation whose first message came live: one acknowledged up to date before
this client started, a group joined meanwhile) the run is taken to start at that first message:
a live push comes after every one stored before it, unless one was lost at that moment (the one
case in which this acknowledges past a message the device never got; it stays in history).
That guess serves acks only: duplicates are decided on what is held, never on a guess.

Held seqs are kept as runs of consecutive seqs above the floor: memory stays small however long
a bot runs.
"""
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Conversation:
    floor: int | None = None  # every seq up to here is held or was acknowledged by this device
    start: int | None = None  # without a floor: where the run is taken to start (acks only)
    runs: list[list[int]] = field(default_factory=list)  # held seqs above the floor: sorted [first, last]
    acked: int = 0  # the highest seq acknowledged (message.ack answered ok)
    received: int = 0  # distinct messages received (own sends not counted)
    in_sync: bool = False  # a message of it came in the current bind's sync

    def holds(self, seq: int) -> bool:
        if self.floor is not None and seq <= self.floor:
            return True
        return any(first <= seq <= last for first, last in self.runs)

    def add(self, seq: int) -> None:
        runs = self.runs
        if runs and runs[-1][1] + 1 == seq:  # in order, the usual case
            runs[-1][1] = seq
        else:
            at = next((i for i, (first, _) in enumerate(runs) if first > seq), len(runs))
            runs.insert(at, [seq, seq])
            if at + 1 < len(runs) and runs[at + 1][0] == seq + 1:
                runs[at][1] = runs.pop(at + 1)[1]
            if at > 0 and runs[at - 1][1] + 1 == seq:
                runs[at - 1][1] = runs.pop(at)[1]
        if self.floor is None and runs[0][0] == 1:
            self.floor = 0  # rule 1
        if self.floor is not None:
            self.settle()

    def settle(self) -> None:
        """Fold the runs that reach the floor into it."""
        assert self.floor is not None
        while self.runs and self.runs[0][0] <= self.floor + 1:
            self.floor = max(self.floor, self.runs.pop(0)[1])
        self.start = None

    def run_end(self) -> int | None:
        base = self.floor if self.floor is not None else self.start
        if base is None:
            return None
        for first, last in self.runs:
            if first > base + 1:
                break
            base = max(base, last)
        return base


class Inbox:
    def __init__(self) -> None:
        self._conversations: dict[str, _Conversation] = {}
        self.duplicates = 0  # message.new pushes dropped as already held
        self.received = 0  # distinct messages received, all conversations

    def _get(self, conversation_id: str) -> _Conversation:
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            conversation = self._conversations[conversation_id] = _Conversation()
        return conversation

    def keep(self, conversation_id: str, seq: int, in_sync: bool = False) -> bool:
        """Note a received message; False when it is a duplicate (already held)."""
        c = self._conversations.get(conversation_id)
        if c is None:
            c = self._conversations[conversation_id] = _Conversation()
        floor = c.floor
        if floor is not None and seq == floor + 1 and not c.runs:  # in order past the floor: the usual case
            c.floor = seq
        else:
            if in_sync and not c.in_sync and floor is None:
                c.floor = seq - 1  # rule 2
                c.settle()
            if c.holds(seq):
                self.duplicates += 1
                return False
            if c.floor is None and c.start is None:
                c.start = seq - 1  # the guess, for acks
            c.add(seq)
        c.in_sync = c.in_sync or in_sync
        c.received += 1
        self.received += 1
        return True

    def hold_own(self, conversation_id: str, seq: int) -> None:
        """Note a message this device sent (its reply gave the seq): held without a push."""
        c = self._get(conversation_id)
        if not c.holds(seq):
            if c.floor is None and c.start is None:
                c.start = seq - 1
            c.add(seq)

    def holds(self, conversation_id: str, seq: int) -> bool:
        c = self._conversations.get(conversation_id)
        return c is not None and c.holds(seq)

    def received_in(self, conversation_id: str) -> int:
        c = self._conversations.get(conversation_id)
        return 0 if c is None else c.received

    def begin_sync(self) -> None:
        """A bind (auth.login / auth.resume) is under way: its sync follows."""
        for c in self._conversations.values():
            c.in_sync = False

    def end_sync(self) -> None:
        """The bind's `sync.done` came."""
        for c in self._conversations.values():
            if c.floor is None and not c.in_sync and c.runs:
                c.floor = c.runs[-1][1]  # rule 3
                c.settle()

    def ack_targets(self) -> dict[str, int]:
        """conversation_id -> the seq to acknowledge, for each conversation whose unbroken run
        reaches past what was acknowledged."""
        targets = {}
        for conversation_id, c in self._conversations.items():
            end = c.run_end()
            if end is not None and end > c.acked:
                targets[conversation_id] = end
        return targets

    def acknowledged(self, conversation_id: str, seq: int) -> None:
        c = self._get(conversation_id)
        c.acked = max(c.acked, seq)
