"""A push's message built as JSON directly is what the chat.Message model dumps, key for key."""
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from services.chat.domain.records import Message
from shared.contracts import chat
from shared.contracts.calls import CallRecord
from shared.contracts.interactions import Quote

SENT = datetime(2026, 12, 7, 13, 45, 1, 234000, tzinfo=timezone.utc)
PLAIN = Message("m1", "d:a:b", 7, "u_a", "c1", {"user_id": "u_b"}, SENT, text="hi")
VARIANTS = [
    PLAIN,
    Message("m2", "g1", 8, "u_a", "c2", {"group_id": "g1"}, SENT, text=""),
    Message(
        "m3", "d:a:b", 9, "u_a", "c3", {"user_id": "u_b"}, SENT, text="look", expires_at=SENT + timedelta(days=1),
        edited_at=SENT + timedelta(seconds=5), file=chat.Attachment(file_id="f1", name="a.png", size=3, content_type="image/png"),
        reply_to=Quote(message_id="m1", from_user_id="u_a", text="hi"), reactions={"👍": ["u_b", "u_a"], "😀": []},
        mentions=("u_b",),
    ),
    Message("m4", "d:a:b", 10, "u_a", "c4", {"user_id": "u_b"}, SENT, text="secret", burn_seconds=30,
            burns_at=SENT + timedelta(days=7)),
    Message("m5", "d:a:b", 11, "u_a", "c5", {"user_id": "u_b"}, SENT, text="opened", burn_seconds=30,
            opened_at=SENT + timedelta(seconds=3), burns_at=SENT + timedelta(seconds=33)),
    Message("m6", "d:a:b", 12, "u_a", "c6", {"user_id": "u_b"}, SENT,
            sticker=chat.Sticker(sticker_id="builtin:cat", url="/stickers/cat.png")),
    Message("m7", "d:a:b", 13, "u_a", "c7", {"user_id": "u_b"}, SENT, voice=chat.Voice(duration_ms=1200),
            file=chat.Attachment(file_id="f2", name="v.ogg", size=9, content_type="audio/ogg")),
    Message("m8", "d:a:b", 14, "u_a", "c8", {"user_id": "u_b"}, SENT,
            call=CallRecord(call_id="k1", media="audio", outcome="missed")),
]


@pytest.mark.parametrize("message", VARIANTS, ids=lambda m: m.message_id)
@pytest.mark.parametrize("sealed", [False, True])
def test_contract_json_is_the_models_dump(message: Message, sealed: bool) -> None:
    expected = message.contract(sealed=sealed).model_dump(mode="json")
    assert orjson.dumps(message.contract_json(sealed=sealed)) == orjson.dumps(expected)
