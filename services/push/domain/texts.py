"""The words a notification is made of, in each locale a subscription may ask for (docs/push.md).
A message's own text is never translated: only what stands for content a notification does not
show (a photo, a call, a message that burns after reading, an end-to-end encrypted one, previews
turned off)."""
from typing import Literal

from shared.contracts.push import Locale

Key = Literal[
    "photo", "file", "voice", "sticker", "call", "burn", "encrypted", "new_message", "someone", "incoming_audio_call",
    "incoming_video_call",
]

TEXTS: dict[Locale, dict[Key, str]] = {
    "en": {
        "photo": "Photo",
        "file": "File",
        "voice": "Voice message",
        "sticker": "Sticker",
        "call": "Call",
        "burn": "Sent a message that burns after reading",
        "encrypted": "New encrypted message",
        "new_message": "New message",
        "someone": "Someone",
        "incoming_audio_call": "Incoming voice call",
        "incoming_video_call": "Incoming video call",
    },
    "zh-CN": {
        "photo": "图片",
        "file": "文件",
        "voice": "语音消息",
        "sticker": "表情",
        "call": "通话",
        "burn": "发送了一条阅后即焚消息",
        "encrypted": "新的加密消息",
        "new_message": "新消息",
        "someone": "有人",
        "incoming_audio_call": "语音通话来电",
        "incoming_video_call": "视频通话来电",
    },
}


def locale_of(wanted: str | None) -> Locale:
    """A locale we have texts for: the one asked for, else English."""
    return "zh-CN" if wanted == "zh-CN" else "en"


def text(locale: str | None, key: Key) -> str:
    return TEXTS[locale_of(locale)][key]
