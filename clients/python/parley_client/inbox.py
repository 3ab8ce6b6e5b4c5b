"""What a device holds of each conversation, by (conversation_id, seq): PROTOCOL.md's rules for
clients, in one place.

- Duplicates are dropped by (conversation_id, seq): delivery is at-least-once (a sync overlaps
  live pushes, a retried send pushes its message again).
- A device acknowledges, per conversation, the highest seq below which it holds everything
  (docs/protocol.md, "Acknowledging and gaps"): holding 1-5 and 7, it acks 5.

Where the unbroken run starts (the "floor": everything up to it is held, or was acknowledged by
this device before) is known in three ways, and never guessed from a live push, which may have
overtaken a lost one:
1. seq 1 is held: a run from the conversation's start;
2. the first message of a conversation in a bind's sync: the sync starts just above the
   device's cursor, so the floor is one below it;
3. a bind's sync that brought nothing of a conversation: the cursor is at or above all the
   conversation's messages, so above everything held.
A conversation whose floor is not known yet (a group joined while online) is acknowledged once
the next bind's sync tells.

Only keys are kept, and only those above the floor: memory stays small however long a bot runs.
"""
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Conversation:
    floor: int | None = None  # every seq up to here is held or was acknowledged by this device
    acked: int = 0  # the highest seq acknowledged (message.ack answered ok)
    above: set[int] = field(default_factory=set)  # held seqs above the floor (every held one while unknown)
    received: int = 0  # distinct messages received (own sends not counted)
    in_sync: bool = False  # a message of it came in the current bind's sync


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
        if in_sync and not c.in_sync:
            c.in_sync = True
            if c.floor is None:
                self._set_floor(c, seq - 1)  # rule 2
        floor = c.floor
        if (floor is not None and seq <= floor) or seq in c.above:
            self.duplicates += 1
            return False
        c.received += 1
        self.received += 1
        if floor is not None and seq == floor + 1:  # in order, the usual case: no set to touch
            c.floor = seq
            if c.above:
                self._advance(c)
        else:
            c.above.add(seq)
            if floor is None and seq == 1:
                self._advance(c)
        return True

    def hold_own(self, conversation_id: str, seq: int) -> None:
        """Note a message this device sent (its reply gave the seq): held without a push."""
        c = self._get(conversation_id)
        if not ((c.floor is not None and seq <= c.floor) or seq in c.above):
            c.above.add(seq)
            self._advance(c)

    def holds(self, conversation_id: str, seq: int) -> bool:
        c = self._conversations.get(conversation_id)
        return c is not None and ((c.floor is not None and seq <= c.floor) or seq in c.above)

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
            if c.floor is None and not c.in_sync and c.above:
                self._set_floor(c, max(c.above))  # rule 3

    def ack_targets(self) -> dict[str, int]:
        """conversation_id -> the seq to acknowledge, for each conversation whose unbroken run
        reaches past what was acknowledged."""
        return {cid: c.floor for cid, c in self._conversations.items() if c.floor is not None and c.floor > c.acked}

    def acknowledged(self, conversation_id: str, seq: int) -> None:
        c = self._get(conversation_id)
        c.acked = max(c.acked, seq)

    def _set_floor(self, c: _Conversation, floor: int) -> None:
        c.floor = floor
        c.above = {seq for seq in c.above if seq > floor}
        self._advance(c)

    @staticmethod
    def _advance(c: _Conversation) -> None:
        if c.floor is None:
            if 1 not in c.above:
                return
            c.floor = 0  # rule 1
        while c.floor + 1 in c.above:
            c.floor += 1
            c.above.remove(c.floor)
