"""Every setting of every Parley process, read once from `PARLEY_*` environment variables."""
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore")

    # Where the infrastructure is.
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    redis_url: str = "redis://127.0.0.1:6379/0"
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    mongo_db: str = "parley"
    # Prefix of every exchange, queue and Redis key, so that two stacks (a dev run and a
    # test run) can share one broker and one Redis without seeing each other's traffic.
    namespace: str = "parley"

    log_level: str = "INFO"
    log_format: str = Field("json", pattern="^(json|text)$")
    # A service's prometheus endpoint; 0 turns it off (the gateway serves /metrics itself).
    metrics_port: int = 0

    # Broker behaviour.
    rpc_timeout_seconds: float = 10.0
    prefetch: int = 64
    # Deliveries after which a failing command goes to the dead-letter queue.
    delivery_limit: int = 5
    command_queue_type: str = Field("quorum", pattern="^(quorum|classic)$")
    connect_retry_seconds: float = 60.0
    # SIGTERM: a service stops consuming and waits this long for its in-flight handlers (and
    # their acks) before closing. Keep the deployment's grace period above it.
    shutdown_timeout_seconds: float = 20.0

    # Tokens: HS256, shared by auth (signs) and the gateway (verifies).
    jwt_secret: str = "parley-dev-secret-change-me-in-production-0123456789"
    token_ttl_seconds: int = 7 * 24 * 3600
    # argon2id cost (OWASP's minimum: 2 passes over 19 MiB, one lane).
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456

    # Presence: a device is "online" while its gateway refreshes it; a crashed gateway's
    # devices are announced offline within presence_ttl_seconds.
    presence_ttl_seconds: float = 30.0
    presence_sweep_seconds: float = 2.0

    # Gateway.
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    gateway_instance_id: str = ""  # empty: a fresh id per process
    max_frame_bytes: int = 64 * 1024
    # Frames up to this size are read and answered with too_large; bigger ones close the socket.
    ws_max_message_bytes: int = 4 * 1024 * 1024
    # permessage-deflate, when a client offers it (browsers and `websockets` always do): its
    # zlib contexts cost ~40 KiB per socket for the life of the socket, idle or not, while
    # Parley's frames are small JSON that compresses little. Off unless bandwidth matters more.
    ws_per_message_deflate: bool = False
    # Pushes waiting for one slow socket before it is closed (the client resyncs on return).
    outbound_queue_limit: int = 20000
    # SIGTERM: for this long the gateway keeps its port open answering /readyz 503 and refusing
    # new sockets (so a load balancer takes it out of rotation before the port closes); its
    # sockets are closed with 1012 as soon as their in-flight requests are answered.
    gateway_drain_seconds: float = 2.0
    # message.send per user, over all gateways and devices (a token bucket in Redis):
    # refilled at send_rate_per_second, holding at most send_burst.
    send_rate_per_second: float = Field(20.0, gt=0)
    send_burst: int = Field(50, ge=1)
    sync_batch_size: int = 500

    # Files: the largest upload accepted (bytes); bigger ones get 413 as soon as they pass it.
    max_upload_bytes: int = 100 * 1024 * 1024
    # An upload that sends nothing for this long is abandoned (its chunks deleted).
    upload_idle_seconds: float = 60.0


@lru_cache
def get_settings() -> Settings:
    return Settings()
