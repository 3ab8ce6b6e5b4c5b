"""Sticker and voice messages on chat's side (docs/protocol.md "Stickers and emoji", "Voice
messages and thumbnails"), and the built-in pack the gateway ships."""
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.chat.domain.records import Draft
from services.chat.storage import documents
from shared.contracts import chat
from shared.contracts.base import utc_now
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.files import FileMeta
from shared.contracts.images import ImageInfo
from shared.stickers import BUILTIN_STICKERS, builtin_sticker_id, builtin_sticker_url, parse_sticker_id
from tests.unit.helpers import StaticFiles, profile
from tests.unit.world import chat_world

A, B = "u_alice", "u_bob"
ROOT = Path(__file__).resolve().parents[2]
STICKER_DIR = ROOT / "services" / "gateway" / "web" / "stickers"
SVG = "{http://www.w3.org/2000/svg}"


class FilesWithImages(StaticFiles):
    """The `Files` port with images files made (made stickers, avatars), counting lookups."""

    def __init__(self) -> None:
        super().__init__()
        self.known_images: dict[str, ImageInfo] = {}
        self.asked = 0

    def add_image(self, image_id: str, kind: str = "sticker") -> ImageInfo:
        info = ImageInfo(
            image_id=image_id, kind=kind, url=f"/images/{image_id}", content_type="image/webp", size=10, sha256="0" * 64
        )
        self.known_images[image_id] = info
        return info

    async def infos(self, file_ids: list[str]) -> dict[str, FileMeta]:
        self.asked += 1
        return await super().infos(file_ids)

    async def images(self, image_ids: list[str]) -> dict[str, ImageInfo]:
        self.asked += 1
        return {i: self.known_images[i] for i in image_ids if i in self.known_images}


@pytest.fixture
async def world(db, settings):
    async with chat_world(db, settings, profile(A), profile(B), files=FilesWithImages()) as world:
        await world.befriend(A, B)
        yield world


def item(client_msg_id: str, **content) -> tuple[str, str, dict]:
    """One message.send of A's to B, for `world.send_items`."""
    return A, "d1", {"to": {"user_id": B}, "client_msg_id": client_msg_id, **content}


async def send(world, client_msg_id: str, **content) -> chat.MessageSendReply:
    return await world.send(A, B, client_msg_id=client_msg_id, **content)


async def fetch_history(world, conversation_id: str) -> chat.HistoryReply:
    return await world.ask(B, "history.fetch", conversation_id=conversation_id)


async def refused(world, db, **content) -> ParleyError:
    with pytest.raises(ParleyError) as caught:
        await send(world, "c1", **content)
    assert await db["messages"].count_documents({}) == 0
    return caught.value


# --- the request's shape -------------------------------------------------------------------
@pytest.mark.parametrize(
    "content",
    [
        {"sticker_id": "builtin:heart", "text": "hi"},
        {"sticker_id": "builtin:heart", "file_id": "f_1"},
        {"voice": {"duration_ms": 1000}},
        {"voice": {"duration_ms": 1000}, "sticker_id": "builtin:heart"},
        {"file_id": "f_1", "voice": {"duration_ms": 0}},
        {"file_id": "f_1", "voice": {"duration_ms": 900_001}},
        {},
    ],
)
def test_a_send_with_content_that_does_not_go_together_is_refused(content):
    with pytest.raises(ValidationError):
        chat.MessageSend(to={"user_id": B}, client_msg_id="c", **content)


@pytest.mark.parametrize(
    "content",
    [
        {"sticker_id": "builtin:heart"},
        {"file_id": "f_1", "voice": {"duration_ms": 1}},
        {"file_id": "f_1", "voice": {"duration_ms": 900_000}, "text": "caption"},
    ],
)
def test_a_sticker_alone_and_a_voice_with_its_file_are_messages(content):
    chat.MessageSend(to={"user_id": B}, client_msg_id="c", **content)


# --- the built-in pack -----------------------------------------------------------------------
def test_sticker_ids_parse_into_builtin_names_and_made_image_ids():
    assert parse_sticker_id("builtin:cat") == ("builtin", "cat")
    assert parse_sticker_id("builtin:nope") == ("builtin", "nope")
    assert parse_sticker_id("i_abc") == ("made", "i_abc")
    assert builtin_sticker_id("cat") == "builtin:cat" and builtin_sticker_url("cat") == "/app/stickers/cat.svg"


def test_every_builtin_has_its_svg_and_every_svg_is_a_builtin():
    assert len(BUILTIN_STICKERS) >= 12 and len(set(BUILTIN_STICKERS)) == len(BUILTIN_STICKERS)
    assert sorted(p.stem for p in STICKER_DIR.glob("*.svg")) == sorted(BUILTIN_STICKERS)


@pytest.mark.parametrize("name", BUILTIN_STICKERS)
def test_each_builtin_svg_is_self_contained_and_inert(name):
    """Drawn as the page's own images: no script, no event handler, nothing fetched from elsewhere."""
    root = ET.parse(STICKER_DIR / f"{name}.svg").getroot()
    assert root.tag == f"{SVG}svg" and root.get("viewBox") == "0 0 256 256"
    for element in root.iter():
        tag = element.tag.removeprefix(SVG)
        assert element.tag.startswith(SVG) and tag not in ("script", "foreignObject", "image", "a", "style"), tag
        for attribute, value in element.attrib.items():
            assert not attribute.lower().startswith("on"), attribute
            assert "href" not in attribute and "url(" not in value and "//" not in value, (attribute, value)


def test_the_builtin_svgs_are_packaged_with_the_gateway():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "web/stickers/*.svg" in data["tool"]["setuptools"]["package-data"]["services.gateway"]


# --- sending -------------------------------------------------------------------------------
async def test_a_builtin_sticker_is_pushed_and_kept_without_asking_files(world):
    await world.online(B, "phone")
    reply = await send(world, "c1", sticker_id="builtin:party")
    sticker = {"sticker_id": "builtin:party", "url": "/app/stickers/party.svg"}
    (pushed,) = [p["data"] for p in world.outbox.received_by(B, "phone") if p["type"] == "message.new"]
    assert pushed["sticker"] == sticker and "text" not in pushed and "file" not in pushed
    history = await fetch_history(world, reply.conversation_id)
    assert history.messages[0].sticker.model_dump() == sticker
    assert world.files.asked == 0


async def test_an_unknown_builtin_is_not_found(world, db):
    error = await refused(world, db, sticker_id="builtin:unicorn")
    assert error.code == ErrorCode.NOT_FOUND and "no such sticker" in error.message


async def test_a_made_sticker_is_resolved_through_files(world):
    world.files.add_image("i_made")
    await send(world, "c1", sticker_id="i_made")
    stored = await world.messages.message((await world.messages.messages.find_one({}))["_id"])
    assert stored.sticker == chat.Sticker(sticker_id="i_made", url="/images/i_made")


@pytest.mark.parametrize("image_id", ["i_unknown", "i_avatar"])
async def test_an_unknown_image_or_one_that_is_no_sticker_is_not_found(world, db, image_id):
    world.files.add_image("i_avatar", kind="avatar")
    error = await refused(world, db, sticker_id=image_id)
    assert error.code == ErrorCode.NOT_FOUND and error.message == "no such sticker"


async def test_a_text_asks_files_nothing(world):
    await send(world, "c1", text="hello")
    assert world.files.asked == 0


async def test_a_batch_asks_files_once_for_its_files_and_once_for_its_stickers(world):
    """Looked up together, not one item at a time: a batch of six messages, two files (one sent
    twice), two made stickers and a quote costs two calls to files (it cost five)."""
    for f in ("f_one", "f_two"):
        world.files.add(f, uploader=A)
    for i in ("i_one", "i_two"):
        world.files.add_image(i)
    (first,) = await world.send_items([item("q", text="quoted")])
    world.files.asked = 0
    items = [
        item("b1", file_id="f_one"), item("b2", file_id="f_two"), item("b3", file_id="f_one", text="again"),
        item("b4", sticker_id="i_one"), item("b5", sticker_id="i_two"),
        item("b6", text="a reply", reply_to=first.message_id),
    ]
    outcomes = await world.send_items(items)
    assert all(isinstance(o, chat.MessageSendReply) for o in outcomes)
    assert world.files.asked == 2


async def test_a_voice_message_carries_its_audio_and_duration(world):
    world.files.add("f_voice", uploader=A, name="note.ogg", size=900, content_type="audio/ogg")
    reply = await send(world, "c1", file_id="f_voice", voice={"duration_ms": 4200})
    history = await fetch_history(world, reply.conversation_id)
    message = history.messages[0]
    assert message.voice == chat.Voice(duration_ms=4200) and message.file.file_id == "f_voice"


async def test_a_reply_to_a_sticker_or_a_voice_message_quotes_what_it_is(world):
    sticker = await send(world, "c1", sticker_id="builtin:heart")
    world.files.add("f_voice", uploader=A, name="note.ogg", size=900, content_type="audio/ogg")
    voice = await send(world, "c2", file_id="f_voice", voice={"duration_ms": 4200})
    await send(world, "c3", text="that one", reply_to=sticker.message_id)
    await send(world, "c4", text="and that", reply_to=voice.message_id)
    history = await fetch_history(world, sticker.conversation_id)
    quotes = [m.reply_to.model_dump(exclude_none=True) for m in history.messages if m.reply_to]
    assert quotes == [
        {"message_id": sticker.message_id, "from_user_id": A, "sticker_url": "/app/stickers/heart.svg"},
        {"message_id": voice.message_id, "from_user_id": A, "file_name": "note.ogg", "voice": True},
    ]


async def test_a_voice_message_with_a_file_that_is_no_audio_is_refused(world, db):
    world.files.add("f_text", uploader=A, name="notes.txt", content_type="text/plain")
    error = await refused(world, db, file_id="f_text", voice={"duration_ms": 4200})
    assert error.code == ErrorCode.BAD_REQUEST
    assert error.message == "data.voice: a voice message carries an audio file"


async def test_the_same_file_without_voice_is_a_plain_file_message(world):
    world.files.add("f_text", uploader=A, name="notes.txt", content_type="text/plain")
    await send(world, "c1", file_id="f_text")
    assert "voice" not in await world.messages.messages.find_one({})


async def test_a_burn_after_reading_sticker_reaches_its_recipient_sealed(world):
    await world.online(B, "phone")
    await send(world, "c1", sticker_id="builtin:heart", burn_seconds=10)
    (pushed,) = [p["data"] for p in world.outbox.received_by(B, "phone") if p["type"] == "message.new"]
    assert "sticker" not in pushed and pushed["burn"]["seconds"] == 10


def test_documents_keep_sticker_and_voice():
    sticker = chat.Sticker(sticker_id="builtin:ok", url="/app/stickers/ok.svg")
    for draft in (
        Draft("m_1", A, "c1", {"user_id": B}, utc_now(), sticker=sticker),
        Draft("m_2", A, "c2", {"user_id": B}, utc_now(), voice=chat.Voice(duration_ms=7)),
    ):
        back = documents.message(documents.message_doc(draft, "d_x", 1))
        assert (back.sticker, back.voice) == (draft.sticker, draft.voice)
