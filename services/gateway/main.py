"""gateway: runs the FastAPI app on uvicorn; SIGTERM drains it (Gateway.drain) before uvicorn stops."""
import signal
import socket
from types import FrameType

import uvicorn

from services.gateway.app import GatewayApp, create_app
from services.gateway.wsprotocol import GatewayWebSocketProtocol
from shared.logs import configure_logging
from shared.runtime import refuse_to_start_unsafely
from shared.settings import get_settings


class DrainingServer(uvicorn.Server):
    """uvicorn, with the gateway drained first when told to stop.

    uvicorn's own shutdown closes the port at once and every socket with 1012 under requests
    still in flight, so /readyz never says 503 and replies are lost. Here the port stays open
    while the gateway drains (see Gateway.drain); uvicorn's shutdown (the port, HTTP requests
    still running, then the lifespan) follows.
    """

    def __init__(self, config: uvicorn.Config, app: GatewayApp):
        super().__init__(config)
        self.gateway_app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if not self.force_exit:  # a second Ctrl-C skips the drain
            await self.gateway_app.gateway.drain()  # started: uvicorn shuts down only after a startup
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn raises a caught SIGTERM/SIGINT again once it has shut down, so the process
        # would end "killed by signal"; a drained gateway has stopped cleanly and exits 0.
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured[:] = [s for s in captured if s not in (signal.SIGTERM, signal.SIGINT)]


def main() -> None:
    settings = get_settings()
    refuse_to_start_unsafely("gateway", settings)
    configure_logging("gateway", settings.log_level, settings.log_format)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        ws=GatewayWebSocketProtocol,
        ws_max_size=settings.ws_max_message_bytes,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    DrainingServer(config, app).run()


if __name__ == "__main__":
    main()
