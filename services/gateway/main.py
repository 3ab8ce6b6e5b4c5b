"""gateway: runs the FastAPI app on uvicorn (SIGTERM: uvicorn stops accepting, lifespan drains)."""
import uvicorn

from services.gateway.app import create_app
from services.gateway.wsprotocol import GatewayWebSocketProtocol
from shared.logs import configure_logging
from shared.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging("gateway", settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        ws=GatewayWebSocketProtocol,
        ws_max_size=settings.ws_max_message_bytes,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
