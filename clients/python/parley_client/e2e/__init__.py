"""End-to-end encrypted direct conversations (docs/security.md, issue 28 step one): Olm from
vodozemac, files with AES-256-GCM, a local sealed store, pins and safety numbers.

Needs the `e2e` extra: `pip install './clients/python[e2e]'` (vodozemac, cryptography).
"""
from parley_client.e2e.device import DecryptionError, Device, DeviceKeys, KeyChange
from parley_client.e2e.manager import E2E
from parley_client.e2e.primitives import (
    E2EError, FileSecret, decrypt_file, encrypt_file, format_safety_number, parse_safety_qr, safety_number, safety_qr,
)
from parley_client.e2e.store import DevicePin, E2EStore, StoredMessage

__all__ = [
    "E2E", "DecryptionError", "Device", "DeviceKeys", "DevicePin", "E2EError", "E2EStore", "FileSecret", "KeyChange",
    "StoredMessage", "decrypt_file", "encrypt_file", "format_safety_number", "parse_safety_qr", "safety_number",
    "safety_qr",
]
