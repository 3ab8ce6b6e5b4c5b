"""Images made by the files service, end to end: thumbnails at /files/<id>/thumbnail under the
file's own access rule, stickers (stickers.list/add/remove) served at /images/<id>, and what
/images/ will not serve."""
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.integration.test_files_http import auth, download, http
from tests.integration.test_profiles import png, uploaded
from tests.support.client import Client, ReplyError, befriend, new_user
from tests.unit.test_images import png_header_only


def jpeg(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (250, 200, 0)).save(out, "JPEG", quality=60)
    return out.getvalue()


async def refusal(client: Client, operation: str, data: dict[str, Any]) -> str:
    with pytest.raises(ReplyError) as exc:
        await client.call(operation, data)
    return exc.value.code


async def thumbnail(client: Client, file_id: str, token: str | None = None, **headers: str) -> httpx.Response:
    async with http(client.port) as web:
        return await web.get(f"/files/{file_id}/thumbnail", headers=auth(token or client.token, **headers))


async def test_thumbnail_of_a_photo_and_who_may_see_it(port: int) -> None:
    alice, bob, stranger = await new_user(port), await new_user(port), await new_user(port)
    photo = await uploaded(alice, jpeg((2000, 1500)), "beach.jpg")

    served = await thumbnail(alice, photo)
    assert served.status_code == 200, served.text
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["cache-control"] == "private, max-age=86400"
    image = Image.open(io.BytesIO(served.content))
    assert image.format == "JPEG" and image.size == (320, 240)
    assert (await thumbnail(alice, photo, **{"If-None-Match": served.headers["etag"]})).status_code == 304
    assert (await thumbnail(alice, photo)).content == served.content  # kept, not made again
    # The original is untouched.
    assert len((await download(port, alice.token, photo)).content) > len(served.content)

    # Same rule as the file: a stranger gets the 404 of a file that does not exist, no token a 401.
    assert (await thumbnail(stranger, photo)).status_code == 404
    assert (await thumbnail(stranger, "f_missing")).status_code == 404
    async with http(port) as web:
        assert (await web.get(f"/files/{photo}/thumbnail")).status_code == 401
    await befriend(alice, bob)
    await alice.call("message.send", {"to": {"user_id": bob.user_id}, "client_msg_id": "photo", "file_id": photo})
    assert (await thumbnail(bob, photo)).content == served.content
    # A thumbnail is no public image.
    async with http(port) as web:
        assert (await web.get(f"/images/{photo}.thumbnail")).status_code == 404
    for client in (alice, bob, stranger):
        await client.close()


async def test_no_thumbnail_for_what_is_not_a_readable_image(port: int) -> None:
    alice = await new_user(port)
    text = await uploaded(alice, b"plain words", "notes.txt", "text/plain")
    refused = await thumbnail(alice, text)
    assert refused.status_code == 415 and refused.json()["error"]["code"] == "bad_request"
    broken = await uploaded(alice, png((50, 50))[:70], "broken.png")
    assert (await thumbnail(alice, broken)).status_code == 415
    huge = await uploaded(alice, png_header_only(9000, 9000), "huge.png")
    too_large = await thumbnail(alice, huge)
    assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "too_large"
    await alice.close()


async def test_stickers_add_list_remove(port: int, other_port: int) -> None:
    alice, mallory = await new_user(port), await new_user(other_port)
    builtin = (await alice.call("stickers.list"))["stickers"]
    assert builtin and all(s["pack"] == "builtin" and s["sticker_id"].startswith("builtin:") for s in builtin)

    source = await uploaded(alice, png((1024, 512)), "wide.png")
    sticker = await alice.call("stickers.add", {"file_id": source})
    assert sticker["pack"] == "mine" and sticker["url"] == f"/images/{sticker['sticker_id']}"
    assert (await alice.call("stickers.list"))["stickers"] == [*builtin, sticker]
    assert (await mallory.call("stickers.list"))["stickers"] == builtin

    async with http(other_port) as web:  # any gateway, no token
        served = await web.get(sticker["url"])
        assert served.status_code == 200 and served.headers["content-type"] == "image/webp"
        assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert Image.open(io.BytesIO(served.content)).size == (512, 256)
        assert (await web.head(sticker["url"])).headers["content-length"] == str(len(served.content))

    assert await refusal(mallory, "stickers.add", {"file_id": source}) == "not_found"  # not hers to download
    assert await refusal(mallory, "stickers.add", {"file_id": "f_missing"}) == "not_found"
    text = await uploaded(alice, b"words", "a.txt", "text/plain")
    assert await refusal(alice, "stickers.add", {"file_id": text}) == "bad_request"
    assert await refusal(mallory, "stickers.remove", {"sticker_id": sticker["sticker_id"]}) == "not_found"
    assert await refusal(alice, "stickers.remove", {"sticker_id": builtin[0]["sticker_id"]}) == "not_found"

    assert await alice.call("stickers.remove", {"sticker_id": sticker["sticker_id"]}) == {}
    assert (await alice.call("stickers.list"))["stickers"] == builtin
    for client in (alice, mallory):
        await client.close()


async def test_images_serves_only_images(port: int) -> None:
    alice = await new_user(port)
    async with http(port) as web:
        for path in ("/images/i_" + "0" * 32, "/images/nothing", "/images/" + "x" * 200):
            assert (await web.get(path)).status_code == 404
    # An upload is not an image to /images/, even to its uploader's token.
    file_id = await uploaded(alice, png((8, 8)), "tiny.png")
    async with http(port) as web:
        assert (await web.get(f"/images/{file_id}", headers=auth(alice.token))).status_code == 404
    await alice.close()
