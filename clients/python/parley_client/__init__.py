"""A typed asyncio client for Parley (PROTOCOL.md v1).

    async with ParleyClient("http://127.0.0.1:8000", reconnect=True, ack_interval=2) as client:
        await client.login("bot", "a long password")
        async for message in client.messages():
            ...

See README.md beside this package, and `parley --help` for the command line.
"""
from parley_client.client import ParleyClient
from parley_client.connection import Connection, Gateway
from parley_client.errors import ConnectionLost, GatewayUnreachable, Offline, ParleyError, ReplyError, RequestTimeout
from parley_client.inbox import Inbox
from parley_client.models import (
    ErrorInfo, FileInfo, HistoryPage, LoginResult, Message, Push, Recipient, RegisterResult, Reply, ResumeResult,
    SendResult, UploadedFile,
)
from parley_client.outbox import ONCE, PATIENT, Attempt, RetryPolicy
from parley_client.pushes import PushQueue
from parley_client.session import DEFAULT_URL, Session, Stats

__all__ = [
    "DEFAULT_URL", "ONCE", "PATIENT", "Attempt", "Connection", "ConnectionLost", "ErrorInfo", "FileInfo", "Gateway",
    "GatewayUnreachable", "HistoryPage", "Inbox", "LoginResult", "Message", "Offline", "ParleyClient", "ParleyError",
    "Push", "PushQueue", "Recipient", "RegisterResult", "Reply", "ReplyError", "RequestTimeout", "ResumeResult",
    "RetryPolicy", "SendResult", "Session", "Stats", "UploadedFile",
]
