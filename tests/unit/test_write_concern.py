"""PARLEY_MONGO_WRITE_CONCERN (shared/stores.py): the write concern of a service's database, made
as the service makes it, and a write through it accepted. The MongoDB-wire server here is a
standalone, so "majority when the server is a replica set" is seen only as its absence here."""
import subprocess
from typing import Any

from deploy.local.devstack import embedded_mongo_argv, embedded_mongo_url, free_port, wait_for_port
from shared.settings import Settings
from shared.stores import mongo_client, mongo_database, wait_for_mongo
from tests.support.infra import LOG_DIR


async def written_with(settings: Settings) -> dict[str, Any]:
    """The write concern a service's writes carry (its database made as a service makes it)."""
    client = mongo_client(settings)
    try:
        await wait_for_mongo(client, settings)
        db = mongo_database(client, settings)
        await db["things"].insert_one({"x": 1})  # the server takes it
        assert await db["things"].count_documents({}) == 1
        await client.drop_database(settings.mongo_db)
        return dict(db.write_concern.document)
    finally:
        await client.close()


async def test_majority_when_configured(mongo_url: str) -> None:
    settings = Settings(mongo_url=mongo_url, mongo_db="wc_majority", mongo_write_concern="majority")
    assert await written_with(settings) == {"w": "majority", "j": True}


async def test_a_number_of_members_when_configured(mongo_url: str) -> None:
    settings = Settings(mongo_url=mongo_url, mongo_db="wc_one", mongo_write_concern="1", mongo_journal=False)
    assert await written_with(settings) == {"w": 1, "j": False}


async def test_the_servers_default_on_a_standalone(mongo_url: str) -> None:
    """Unset, against a standalone server: journaled, `w` left to the server (1), as before."""
    assert await written_with(Settings(mongo_url=mongo_url, mongo_db="wc_auto")) == {"j": True}


def test_majority_when_the_url_names_a_replica_set() -> None:
    client = mongo_client(Settings(mongo_url="mongodb://db-0,db-1,db-2/?replicaSet=rs0"))
    assert client.write_concern.document == {"w": "majority", "j": True}
    own = mongo_client(Settings(mongo_url="mongodb://db-0/?replicaSet=rs0&w=2"))
    assert own.write_concern.document == {"w": 2, "j": True}  # the URL's own w stands


async def test_majority_when_the_server_turns_out_to_be_a_replica_set() -> None:
    """A URL that names no replica set, to a server that is one (the MongoDB-wire server without
    --standalone advertises a one-member replica set): found on connecting, majority taken."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = embedded_mongo_argv(port, ":memory:")
    assert argv is not None
    argv.remove("--standalone")
    with open(LOG_DIR / "mongo-replica-set.log", "wb") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, 30, "the MongoDB-wire server as a replica set")
        settings = Settings(mongo_url=embedded_mongo_url(port), mongo_db="wc_replicated")
        assert await written_with(settings) == {"w": "majority", "j": True}
    finally:
        server.kill()
        server.wait(10)
