"""Pydantic models of every command, reply, push and event: the one source of truth."""
