"""files: wiring only (clients → stores → handlers), and the reaper of abandoned uploads."""
import asyncio
import logging

from services.files.access import ChatAccess
from services.files.domain.ports import FileStore
from services.files.domain.transfers import reap_abandoned
from services.files.handlers import build_router
from services.files.storage.file_store import MongoFileStore
from services.files.storage.stickers import MongoStickerStore
from shared.broker import RpcClient
from shared.logs import log_event
from shared.runtime import Runtime, run
from shared.service import Router

log = logging.getLogger("parley.files")
_background: set[asyncio.Task[None]] = set()


async def reap_forever(store: FileStore, idle_seconds: float) -> None:
    """Every replica sweeps every idle/4 seconds; claiming an upload is atomic, so one wins."""
    while True:
        await asyncio.sleep(idle_seconds / 4)
        try:
            await reap_abandoned(store, idle_seconds)
        except Exception as exc:  # MongoDB away for a moment: try again next round
            log_event(log, "upload.reap_failed", logging.WARNING, error=repr(exc))


async def wire(rt: Runtime) -> Router:
    store = MongoFileStore(rt.db)
    await store.ensure_indexes()
    idle = rt.settings.upload_idle_seconds
    await reap_abandoned(store, idle)
    task = asyncio.create_task(reap_forever(store, idle), name="files.reaper")
    _background.add(task)
    task.add_done_callback(_background.discard)
    stickers = MongoStickerStore(rt.db)
    await stickers.ensure_indexes()
    rpc = await RpcClient(rt.broker, rt.instance_id).start()
    return build_router(store, ChatAccess(rpc), rt.settings.max_upload_bytes, rt.mongo, stickers)


if __name__ == "__main__":
    run("files", wire)
