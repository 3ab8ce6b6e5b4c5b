"""Opaque, roughly time-ordered ids: a kind prefix, 12 hex digits of milliseconds, 12 random."""
import secrets
import time


def new_id(kind: str) -> str:
    return f"{kind}_{int(time.time() * 1000):012x}{secrets.token_hex(6)}"
