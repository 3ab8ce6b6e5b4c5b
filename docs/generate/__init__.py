"""Regenerate docs/asyncapi.json and the reference section of docs/protocol.md from shared/contracts/."""
