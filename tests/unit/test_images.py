"""Images made from uploads (services/files/domain/{rendering,images,stickers}.py) on a real store,
and profiles (services/auth/domain/profiles.py) with the files service and the events as
recording ports."""
import asyncio
import base64
import hashlib
import io
import struct
import zlib

import pytest
from PIL import Image

from services.auth.domain import profiles
from services.auth.storage.users import MongoUserStore
from services.files.domain import images, rendering, stickers, transfers
from services.files.domain.ports import StoredFile
from services.files.storage.file_store import MongoFileStore
from services.files.storage.stickers import MongoStickerStore
from shared.contracts.auth import ProfileGet, ProfileUpdate, UserProfile
from shared.contracts.base import utc_now
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.files import CHUNK_SIZE, FileRead, UploadBegin, UploadChunk, UploadFinish
from shared.contracts.images import ImageMake
from shared.contracts.wire import Caller
from shared.stickers import BUILTIN_STICKERS
from tests.unit.helpers import tick

ALICE, BOB = "u_alice", "u_bob"


def picture(size: tuple[int, int], fmt: str = "PNG", mode: str = "RGB", color: object = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height pixels, with almost no pixel data behind it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


class Grants:
    """The Access port: chat's answer, fixed per test."""

    def __init__(self, *allowed: tuple[str, str]):
        self.allowed_pairs = set(allowed)

    async def allowed(self, file_id: str, user_id: str) -> bool:
        return (file_id, user_id) in self.allowed_pairs


@pytest.fixture
async def store(db) -> MongoFileStore:
    s = MongoFileStore(db)
    await s.ensure_indexes()
    return s


@pytest.fixture
async def own_stickers(db) -> MongoStickerStore:
    s = MongoStickerStore(db)
    await s.ensure_indexes()
    return s


async def upload(store: MongoFileStore, data: bytes, name: str = "photo.png", uploader: str = ALICE) -> str:
    file_id = (await transfers.begin_upload(UploadBegin(name=name), uploader, store)).file_id
    for i in range(0, len(data), CHUNK_SIZE):
        chunk = UploadChunk(file_id=file_id, index=i // CHUNK_SIZE, data=base64.b64encode(data[i : i + CHUNK_SIZE]))
        await transfers.write_chunk(chunk, uploader, store, 64 * 1024 * 1024)
    finish = UploadFinish(file_id=file_id, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    await transfers.finish_upload(finish, uploader, store, 64 * 1024 * 1024)
    return file_id


async def read_all(store: MongoFileStore, file_id: str, size: int) -> bytes:
    return (await transfers.read_range(FileRead(file_id=file_id, offset=0, length=size), store)).data


async def refused(attempt, code: ErrorCode) -> ParleyError:
    with pytest.raises(ParleyError) as exc:
        await attempt
    assert exc.value.code == code, exc.value.message
    return exc.value


# --- rendering -----------------------------------------------------------------------------------
def test_avatar_is_the_centre_square_at_256_in_webp() -> None:
    wide = Image.new("RGB", (300, 100), (0, 0, 255))
    wide.paste((255, 0, 0), (100, 0, 200, 100))  # the centre third is red
    out = io.BytesIO()
    wide.save(out, "PNG")
    rendered = rendering.render(out.getvalue(), "avatar")
    avatar = opened(rendered.data)
    assert (avatar.format, avatar.size, rendered.content_type) == ("WEBP", (256, 256), "image/webp")
    red, green, blue = avatar.convert("RGB").getpixel((128, 128))  # type: ignore[misc]
    assert red > 200 and blue < 60  # the centre, not the blue sides
    assert avatar.convert("RGB").getpixel((5, 128))[0] > 200  # type: ignore[index]  # cropped, not squeezed


def test_sticker_fits_512_and_keeps_transparency() -> None:
    data = picture((1024, 256), mode="RGBA", color=(0, 128, 0, 0))
    sticker = opened(rendering.render(data, "sticker").data)
    assert sticker.format == "WEBP" and sticker.size == (512, 128)
    assert sticker.mode == "RGBA" and sticker.getpixel((10, 10))[3] == 0  # type: ignore[index]
    small = opened(rendering.render(picture((64, 48), "GIF", mode="P", color=3), "sticker").data)
    assert small.size == (64, 48)  # never enlarged


def test_thumbnail_is_a_jpeg_within_320() -> None:
    thumb = opened(rendering.render(picture((2000, 1500), "JPEG"), "thumbnail").data)
    assert thumb.format == "JPEG" and thumb.size == (320, 240)
    webp = opened(rendering.render(picture((100, 400), "WEBP", mode="RGBA", color=(0, 0, 0, 0)), "thumbnail").data)
    assert webp.size == (80, 320) and webp.getpixel((40, 160)) == (255, 255, 255)  # flattened on white


@pytest.mark.parametrize(
    "data",
    [b"hello, world", b"", picture((10, 10), "BMP"), picture((40, 40))[:60]],
    ids=["text", "empty", "bmp", "truncated-png"],
)
def test_what_is_not_a_readable_image(data: bytes) -> None:
    with pytest.raises(rendering.NotAnImage):
        rendering.render(data, "thumbnail")


@pytest.mark.parametrize("size", [(8000, 6000), (100_000, 100_000)], ids=["48MP", "10GP"])
def test_too_many_pixels_are_refused_before_decoding(size: tuple[int, int]) -> None:
    with pytest.raises(rendering.ImageTooLarge):
        rendering.render(png_header_only(*size), "avatar")


def test_too_many_bytes_are_refused_before_opening() -> None:
    with pytest.raises(rendering.ImageTooLarge):
        rendering.render(b"\x89PNG\r\n\x1a\n" + bytes(rendering.MAX_BYTES), "avatar")


# --- images over the store -----------------------------------------------------------------------
async def test_make_an_avatar_from_an_upload_the_maker_may_download(store) -> None:
    source = await upload(store, picture((400, 300)))
    info = await images.make_image(ImageMake(file_id=source, kind="avatar"), ALICE, store, Grants())
    assert info.url == f"/images/{info.image_id}" and info.kind == "avatar" and info.content_type == "image/webp"
    assert info.image_id.startswith("i_") and len(info.image_id) == 34  # 128 random bits
    data = await read_all(store, info.image_id, info.size)
    assert hashlib.sha256(data).hexdigest() == info.sha256 and opened(data).size == (256, 256)
    assert await images.open_image(info.image_id, store) == info
    # Bob may make one from it once chat says he may download it.
    await refused(images.make_image(ImageMake(file_id=source, kind="avatar"), BOB, store, Grants()), ErrorCode.NOT_FOUND)
    bob = await images.make_image(ImageMake(file_id=source, kind="sticker"), BOB, store, Grants((source, BOB)))
    assert bob.image_id != info.image_id and bob.kind == "sticker"


async def test_only_avatars_and_stickers_open_as_images(store) -> None:
    source = await upload(store, picture((50, 50)))
    thumb = await images.open_thumbnail(source, ALICE, store, Grants())
    for not_an_image in (source, thumb.file_id, "i_" + "0" * 32):
        await refused(images.open_image(not_an_image, store), ErrorCode.NOT_FOUND)


async def test_not_an_image_and_too_large(store) -> None:
    text = await upload(store, b"just words", name="notes.txt")
    refusal = await refused(images.make_image(ImageMake(file_id=text, kind="avatar"), ALICE, store, Grants()), ErrorCode.BAD_REQUEST)
    assert refusal.message == "not an image (PNG, JPEG, GIF or WebP)"
    bomb = await upload(store, png_header_only(9000, 9000), name="bomb.png")
    await refused(images.open_thumbnail(bomb, ALICE, store, Grants()), ErrorCode.TOO_LARGE)
    await refused(images.open_thumbnail(text, ALICE, store, Grants()), ErrorCode.BAD_REQUEST)


async def test_a_thumbnail_is_made_once_and_kept(store, db, monkeypatch) -> None:
    source = await upload(store, picture((2000, 1500), "JPEG"), name="holiday.jpeg")
    renders = 0
    real = rendering.render

    def counting(data: bytes, kind: rendering.Rendering) -> rendering.Rendered:
        nonlocal renders
        renders += 1
        return real(data, kind)

    monkeypatch.setattr(rendering, "render", counting)
    both = await asyncio.gather(*(images.open_thumbnail(source, ALICE, store, Grants()) for _ in range(2)))
    assert both[0] == both[1]  # made twice at once: the same bytes under the same id
    meta = both[0]
    assert (meta.file_id, meta.name, meta.content_type) == (images.thumbnail_id(source), "holiday.jpg", "image/jpeg")
    assert opened(await read_all(store, meta.file_id, meta.size)).size == (320, 240)
    again = await images.open_thumbnail(source, BOB, store, Grants((source, BOB)))
    assert again == meta and renders <= 2
    await refused(images.open_thumbnail(source, BOB, store, Grants()), ErrorCode.NOT_FOUND)
    assert await db["files.files"].count_documents({"metadata.kind": "thumbnail"}) == 1


# --- stickers ------------------------------------------------------------------------------------
async def test_stickers_builtin_then_mine_and_remove(store, own_stickers) -> None:
    source = await upload(store, picture((600, 600), mode="RGBA", color=(1, 2, 3, 128)))
    first = await stickers.add_sticker(source, ALICE, store, Grants(), own_stickers)
    await tick()  # own stickers are listed by the time they were added
    second = await stickers.add_sticker(source, ALICE, store, Grants(), own_stickers)
    assert first.pack == "mine" and first.url == f"/images/{first.sticker_id}"
    assert (await images.open_image(first.sticker_id, store)).kind == "sticker"
    listed = (await stickers.list_stickers(ALICE, own_stickers)).stickers
    assert [s.sticker_id for s in listed] == [f"builtin:{n}" for n in BUILTIN_STICKERS] + [
        first.sticker_id, second.sticker_id,
    ]
    assert all(s.pack == "builtin" and s.url.startswith("/app/stickers/") for s in listed[: len(BUILTIN_STICKERS)])
    assert (await stickers.list_stickers(BOB, own_stickers)).stickers == listed[: len(BUILTIN_STICKERS)]

    for not_hers in (f"builtin:{BUILTIN_STICKERS[0]}" if BUILTIN_STICKERS else "builtin:x", "i_nope"):
        await refused(stickers.remove_sticker(not_hers, ALICE, own_stickers), ErrorCode.NOT_FOUND)
    await refused(stickers.remove_sticker(first.sticker_id, BOB, own_stickers), ErrorCode.NOT_FOUND)
    await stickers.remove_sticker(first.sticker_id, ALICE, own_stickers)
    await refused(stickers.remove_sticker(first.sticker_id, ALICE, own_stickers), ErrorCode.NOT_FOUND)
    mine = [s for s in (await stickers.list_stickers(ALICE, own_stickers)).stickers if s.pack == "mine"]
    assert [s.sticker_id for s in mine] == [second.sticker_id]
    # The image stays for the messages that carry it.
    assert (await images.open_image(first.sticker_id, store)).kind == "sticker"


async def test_at_most_so_many_own_stickers(store, own_stickers, monkeypatch) -> None:
    monkeypatch.setattr(stickers, "MAX_OWN_STICKERS", 2)
    source = await upload(store, picture((20, 20)))
    for _ in range(2):
        await stickers.add_sticker(source, ALICE, store, Grants(), own_stickers)
    await refused(stickers.add_sticker(source, ALICE, store, Grants(), own_stickers), ErrorCode.CONFLICT)
    await stickers.add_sticker(source, BOB, store, Grants((source, BOB)), own_stickers)  # per user


# --- profiles (auth) -----------------------------------------------------------------------------
class Avatars:
    """The AvatarMaker port: files' answer, fixed per test."""

    def __init__(self, error: ParleyError | None = None):
        self.error = error
        self.made: list[tuple[str, str | None]] = []

    async def make_avatar(self, file_id: str, caller: Caller) -> str:
        if self.error is not None:
            raise self.error
        self.made.append((file_id, caller.user_id))
        return f"/images/i_{len(self.made)}"


class Events:
    def __init__(self) -> None:
        self.changed_profiles: list[UserProfile] = []

    async def changed(self, profile: UserProfile) -> None:
        self.changed_profiles.append(profile)


@pytest.fixture
async def users(db) -> MongoUserStore:
    s = MongoUserStore(db)
    await s.ensure_indexes()
    await s.insert(ALICE, "alice", "Alice", "hash", utc_now())
    return s


def as_alice() -> Caller:
    return Caller(request_id="r_1", user_id=ALICE)


async def test_profile_update_and_get(users) -> None:
    avatars, events = Avatars(), Events()
    assert await profiles.get_profile(ProfileGet(user_id=ALICE), users) == UserProfile(
        user_id=ALICE, username="alice", display_name="Alice", avatar_url=None
    )
    renamed = await profiles.update_profile(ProfileUpdate(display_name="  Alice L. "), as_alice(), users, avatars, events)
    assert renamed.display_name == "Alice L." and renamed.avatar_url is None
    with_avatar = await profiles.update_profile(ProfileUpdate(avatar_file_id="f_1"), as_alice(), users, avatars, events)
    assert with_avatar.avatar_url == "/images/i_1" and with_avatar.display_name == "Alice L."
    assert avatars.made == [("f_1", ALICE)]
    assert (await users.search_prefix("alice l", 5))[0].avatar_url == "/images/i_1"  # the folded name moved too
    assert (await users.profiles([ALICE]))[0].avatar_url == "/images/i_1"
    cleared = await profiles.update_profile(ProfileUpdate(clear_avatar=True), as_alice(), users, avatars, events)
    assert cleared.avatar_url is None
    assert events.changed_profiles == [renamed, with_avatar, cleared]
    unchanged = await profiles.update_profile(ProfileUpdate(), as_alice(), users, avatars, events)
    assert unchanged == cleared and len(events.changed_profiles) == 3  # nothing given: nothing announced
    await refused(profiles.get_profile(ProfileGet(user_id="u_nobody"), users), ErrorCode.NOT_FOUND)


async def test_a_refused_avatar_changes_nothing(users) -> None:
    events = Events()
    not_image = Avatars(ParleyError.bad_request("not an image (PNG, JPEG, GIF or WebP)"))
    update = ProfileUpdate(display_name="New", avatar_file_id="f_text")
    refusal = await refused(profiles.update_profile(update, as_alice(), users, not_image, events), ErrorCode.BAD_REQUEST)
    assert refusal.message == "data.avatar_file_id: not an image (PNG, JPEG, GIF or WebP)"
    missing = Avatars(ParleyError.not_found("no such file"))
    await refused(profiles.update_profile(update, as_alice(), users, missing, events), ErrorCode.NOT_FOUND)
    both = ProfileUpdate(avatar_file_id="f_1", clear_avatar=True)
    await refused(profiles.update_profile(both, as_alice(), users, Avatars(), events), ErrorCode.BAD_REQUEST)
    assert (await profiles.get_profile(ProfileGet(user_id=ALICE), users)).display_name == "Alice"
    assert events.changed_profiles == []


class CountingSource:
    """A store whose reads are counted while in flight (and take a moment)."""

    def __init__(self) -> None:
        self.reading = self.most = 0

    async def read(self, file_id: str, offset: int, length: int) -> bytes:
        self.reading += 1
        self.most = max(self.most, self.reading)
        await asyncio.sleep(0.01)
        self.reading -= 1
        return picture((40, 30))


async def test_at_most_two_images_are_read_and_rendered_at_once(monkeypatch):
    """Each holds up to 30 MiB of source and its pixels: a full prefetch of large images must wait
    for a slot holding nothing, not read 64 sources into memory at once."""
    rendering_now = {"now": 0, "most": 0}

    def slow_render(data: bytes, kind: str) -> rendering.Rendered:
        rendering_now["now"] += 1
        rendering_now["most"] = max(rendering_now["most"], rendering_now["now"])
        try:
            return real_render(data, kind)
        finally:
            rendering_now["now"] -= 1

    real_render = rendering.render
    monkeypatch.setattr(rendering, "render", slow_render)
    source = CountingSource()
    stored = StoredFile(
        file_id="f_big", name="big.png", size=10_000, content_type="image/png", sha256="0" * 64,
        uploader="u_a", uploaded_at=utc_now(),
    )
    done = await asyncio.gather(*(images._render(stored, "thumbnail", source) for _ in range(12)))
    assert len(done) == 12 and all(r.content_type == "image/jpeg" for r in done)
    assert source.most == rendering.RENDERS_AT_ONCE
    assert rendering_now["most"] <= rendering.RENDERS_AT_ONCE
