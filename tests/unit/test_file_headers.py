"""The gateway's file headers: Content-Disposition from a stored name, Range parsing, ETags."""
import pytest

from services.gateway.file_routes import ByteRange, Unsatisfiable, content_disposition, etag_matches, parse_range


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        ("report.pdf", "application/pdf", "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"),
        ("✓ résumé.pdf", "application/pdf",
         "attachment; filename=\"_ r_sum_.pdf\"; filename*=UTF-8''%E2%9C%93%20r%C3%A9sum%C3%A9.pdf"),
        ('a"b\r\nc\\.png', "image/png", "inline; filename=\"a_b__c_.png\"; filename*=UTF-8''a%22b%0D%0Ac%5C.png"),
        ("clip.mp4", "VIDEO/mp4", "inline; filename=\"clip.mp4\"; filename*=UTF-8''clip.mp4"),
        ("x;y=z.txt", "text/html", "attachment; filename=\"x;y=z.txt\"; filename*=UTF-8''x%3By%3Dz.txt"),
        ("", "text/plain", "attachment; filename=\"file\"; filename*=UTF-8''file"),
    ],
)
def test_content_disposition(name: str, content_type: str, expected: str) -> None:
    value = content_disposition(name, content_type)
    assert value == expected
    assert "\r" not in value and "\n" not in value


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", ByteRange(0, 9)),
        ("bytes=5-", ByteRange(5, 99)),
        ("bytes=-5", ByteRange(95, 99)),
        ("bytes=-500", ByteRange(0, 99)),
        ("bytes=90-500", ByteRange(90, 99)),
        ("bytes=0-1,3-4", None),
        ("bytes=abc", None),
        ("bytes=9-3", None),
        ("bytes=-", None),
        ("lines=0-5", None),
    ],
)
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0), ("bytes=-3", 0)])
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


def test_etag_matches() -> None:
    assert etag_matches('"abc"', '"abc"')
    assert etag_matches('"x", W/"abc"', '"abc"')
    assert etag_matches("*", '"abc"')
    assert not etag_matches('"abd"', '"abc"')
