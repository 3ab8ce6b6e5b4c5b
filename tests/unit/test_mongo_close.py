"""A service stops promptly even when its database is gone (shared.stores.close_mongo).

Closing the MongoDB client sends endSessions, which first waits up to serverSelectionTimeoutMS
(5 s) for a server: every service of a stack killed at once (its launcher killed -9, so all of
them and the database got SIGTERM together) took 5 s more to exit.
"""
import asyncio
import contextlib
import time

from pymongo.errors import PyMongoError

from shared.settings import Settings
from shared.stores import close_mongo, mongo_client
from tests.support.infra import LOG_DIR, start_embedded_mongo


async def test_closing_the_client_of_a_database_that_is_gone_is_cut_short() -> None:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    url, server = start_embedded_mongo(LOG_DIR / "mongo-close.log")
    try:
        client = mongo_client(Settings(mongo_url=url))
        things = client["close_test"]["things"]
        # Sessions to end, as a service has: several at once, so that some are left after the
        # failed write below (which throws its own away).
        await asyncio.gather(*(things.insert_one({"x": i}) for i in range(4)))
    finally:
        server.kill()
        server.wait(10)
    # As a service's own work does when the database goes: a write fails (the URL has
    # retryWrites=false: one attempt), and the driver takes the server for gone.
    with contextlib.suppress(PyMongoError):
        await things.insert_one({"x": -1})
    assert not client.topology_description.has_readable_server()
    started = time.monotonic()
    await close_mongo(client, timeout=0.5)
    assert time.monotonic() - started < 2.5  # 5 s and more before
