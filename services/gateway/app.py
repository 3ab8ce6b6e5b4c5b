"""The gateway's HTTP and WebSocket surface (FastAPI); the work itself is in gateway.py and the
modules it composes."""
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send

from services.gateway.admission import client_address
from services.gateway.bodylimit import BodyLimit
from services.gateway.frames import error_response, parse_http_body
from services.gateway.gateway import Gateway
from services.gateway.identity import caller_for
from services.gateway.web_routes import add_web_routes
from shared.contracts.errors import ParleyError
from shared.contracts.operations import OPERATIONS
from shared.ids import new_id
from shared.settings import Settings
from shared.stores import redis_client


def is_file_upload(scope: Scope) -> bool:
    """POST /files streams its body under max_upload_bytes (services/gateway/file_routes.py)."""
    return scope["method"] == "POST" and _path(scope) == "/files"


def _path(scope: Scope) -> str:
    """The request's path below the app's root path."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path.removeprefix(root)


WS_PATH = "/ws"


class GatewayApp(FastAPI):
    """FastAPI, except that a WebSocket to /ws goes straight to the gateway.

    A socket's ASGI call stays suspended for the socket's whole life, and so does every frame
    of the middleware and routing it passed through: through FastAPI's stack that is ~15
    coroutines and three AsyncExitStacks (~8 KiB) per socket, idle or not, while none of it
    acts on a WebSocket here (its error middleware and handlers are for HTTP; serve_socket
    handles its own errors). HTTP requests take the whole stack as before.

    `gateway` is set by the lifespan once the gateway has started: uvicorn serves nothing
    before the lifespan's startup is done, and runs its shutdown (the drain) only after it.
    """

    gateway: Gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and _path(scope) == WS_PATH:
            await self.gateway.serve_socket(WebSocket(scope, receive, send))
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> GatewayApp:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        redis = redis_client(settings)
        app.gateway = await Gateway.start(settings, redis)
        try:
            yield
        finally:
            await app.gateway.stop()
            await redis.aclose()

    app = GatewayApp(title="Parley gateway", lifespan=lifespan)

    @app.exception_handler(ParleyError)
    async def parley_error(request: Request, exc: ParleyError) -> JSONResponse:
        return error_response(exc)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive", "gateway_id": app.gateway.gateway_id}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if app.gateway.draining:  # SIGTERM: out of rotation at once, before the port closes
            return JSONResponse({"ready": False, "checks": {"gateway": "draining"}}, status_code=503)
        checks = await app.gateway.readiness.checks()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    async def relay(name: str, request: Request) -> JSONResponse:
        operation = OPERATIONS[name]
        body = parse_http_body(await request.body(), operation)
        address = client_address(
            (request.client.host, request.client.port) if request.client else None, request.headers,
            settings.trust_forwarded_for,
        )
        gateway = app.gateway
        reply = await gateway.rpc.call(operation, body, caller_for(gateway.gateway_id, new_id("h"), address=address))
        return JSONResponse(reply.model_dump(mode="json"), status_code=201 if name == "auth.register" else 200)

    @app.post("/auth/register")
    async def register(request: Request) -> JSONResponse:
        return await relay("auth.register", request)

    @app.post("/auth/login")
    async def login(request: Request) -> JSONResponse:
        return await relay("auth.login", request)

    @app.post("/files")
    async def upload_file(request: Request) -> Response:
        return await app.gateway.transfers.upload(request)

    @app.api_route("/files/{file_id}", methods=["GET", "HEAD"])
    async def download_file(request: Request, file_id: str) -> Response:
        return await app.gateway.transfers.download(request, file_id)

    @app.api_route("/files/{file_id}/thumbnail", methods=["GET", "HEAD"])
    async def file_thumbnail(request: Request, file_id: str) -> Response:
        return await app.gateway.transfers.thumbnail(request, file_id)

    @app.api_route("/images/{image_id}", methods=["GET", "HEAD"])
    async def image(request: Request, image_id: str) -> Response:
        """Avatars and stickers: no token (the id is unguessable), cached for good."""
        return await app.gateway.transfers.image(request, image_id)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    add_web_routes(app)  # the web client: /app/, its service worker and files (mounted last)
    app.add_middleware(BodyLimit, max_bytes=settings.http_max_body_bytes, exempt=is_file_upload)

    return app
