"""Is a string one emoji? (reactions accept any single emoji, docs/protocol.md "Reactions").

Python has no grapheme segmentation, so this checks the shapes emoji take: one pictograph with
optional variation selector and skin tone, such pieces joined by ZWJ (families, professions),
a flag (two regional indicators, or a tag sequence), or a keycap (digit, #, * + U+20E3).
"""

ZWJ, VS15, VS16, KEYCAP = "\u200d", "\ufe0e", "\ufe0f", "\u20e3"
_PICTOGRAPH_RANGES = (
    (0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2300, 0x23FF), (0x2B00, 0x2BFF), (0x2190, 0x21FF),
    (0x2900, 0x297F), (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3297), (0x3299, 0x3299),
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
    (0x2139, 0x2139), (0x24C2, 0x24C2), (0x25AA, 0x25FE),
)
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_REGIONAL = range(0x1F1E6, 0x1F200)
_TAGS = range(0xE0020, 0xE0080)


def _pictograph(c: str) -> bool:
    cp = ord(c)
    return any(lo <= cp <= hi for lo, hi in _PICTOGRAPH_RANGES) and cp not in _SKIN_TONES and cp not in _REGIONAL


def _piece(piece: str) -> bool:
    """One pictograph, then at most a variation selector and a skin tone."""
    if not piece or not _pictograph(piece[0]):
        return False
    rest = piece[1:]
    if rest[:1] in (VS15, VS16):
        rest = rest[1:]
    if rest and ord(rest[0]) in _SKIN_TONES:
        rest = rest[1:]
    if rest[:1] == VS16:
        rest = rest[1:]
    return rest == ""


def is_single_emoji(text: str) -> bool:
    if not text or len(text) > 32:
        return False
    if len(text) == 2 and all(ord(c) in _REGIONAL for c in text):
        return True  # a flag
    if text[0] in "0123456789#*" and text[1:] in (KEYCAP, VS16 + KEYCAP):
        return True  # a keycap
    if len(text) > 2 and ord(text[-1]) == 0xE007F and all(ord(c) in _TAGS for c in text[1:-1]):
        return text[0] == "\U0001F3F4"  # a subdivision flag (England, Scotland, Wales)
    return all(_piece(p) for p in text.split(ZWJ))
