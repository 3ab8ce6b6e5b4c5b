"""Every setting of every Parley process, read once from `PARLEY_*` environment variables."""
from functools import lru_cache

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


# The built-in development secret: public (it is in this file), so refused outside development.
DEV_JWT_SECRET = "parley-dev-secret-change-me-in-production-0123456789"
# What a secret must never look like: the built-in one, a placeholder left from an example
# (docker-compose.yml, deploy/k8s), or anything too short to resist a brute-force search.
PLACEHOLDER_MARKERS = ("change-me", "changeme", "placeholder", "example", "secret-here")
MIN_SECRET_LENGTH = 32


class UnsafeSecret(RuntimeError):
    pass


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore", populate_by_name=True)

    # Where the infrastructure is. RabbitMQ: one URL, or a cluster's nodes separated by commas
    # (shared/amqp_nodes.py: a process reconnects to a live node when its node dies).
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # With several: each process starts at a node picked at random, then goes round the list, so
    # connections and the quorum queues' leaders spread over the cluster (false: the list's order).
    amqp_start_anywhere: bool = True
    redis_url: str = "redis://127.0.0.1:6379/0"
    # A Redis Cluster rather than one Redis: redis_url is then any one node (the seed), and every
    # service speaks to all of them (shared/stores.py; docs/reliability.md "Redis Cluster";
    # deploy/k8s/overlays/clustered).
    redis_cluster: bool = False
    # Buckets of the keys that were global sets (presence's online users, expiries and last seen;
    # calls' ringing and live indexes; rate-limit buckets): each bucket is one hash tag, so one
    # cluster slot (shared/redis_slots.py). Every process of a deployment must use the same
    # number; changing it forgets presence, calls and rate limits held in Redis (not messages).
    redis_buckets: int = Field(16, ge=1, le=1024)
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    mongo_db: str = "parley"
    # Writes acknowledged only once journaled (shared/stores.py): durable across a database crash.
    mongo_journal: bool = True
    # How many members acknowledge a write first: "majority" (it survives the primary's failure:
    # a new primary has it), a number of members, or empty to choose: majority when the URL names
    # a replicaSet or the server turns out to be a replica set member or a mongos, else the
    # server's default (1). Positions and last_seq writes keep w=1 (chat's storage says why).
    mongo_write_concern: str = Field("", pattern=r"^(|majority|[0-9]+)$")
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
    # The dead-letter queue is bounded: the oldest letters go first past either bound, and none
    # is kept longer than the TTL (expired RPC commands land here too).
    dead_letter_max_messages: int = Field(10000, ge=1)
    dead_letter_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    dead_letter_ttl_seconds: int = Field(7 * 24 * 3600, ge=1)
    # The durable queues (every service's commands and events, the dead letters): `quorum`
    # (replicated over a cluster's nodes: what survives the loss of one) or `classic` (one node's).
    # Exclusive queues (RPC replies, a gateway's deliveries) are always classic. A queue cannot
    # change type in place: delete it (rabbitmqctl delete_queue) before switching.
    # PARLEY_COMMAND_QUEUE_TYPE is its older name.
    queue_type: str = Field("quorum", pattern="^(quorum|classic)$",
                            validation_alias=AliasChoices("PARLEY_QUEUE_TYPE", "PARLEY_COMMAND_QUEUE_TYPE", "queue_type"))
    connect_retry_seconds: float = 60.0
    # SIGTERM: a service stops consuming and waits this long for its in-flight handlers (and
    # their acks) before closing. Keep the deployment's grace period above it.
    shutdown_timeout_seconds: float = 20.0

    # `development` is the only environment in which a known default or placeholder secret is
    # accepted (shared.settings.refuse_unsafe_secrets); `make run` and the tests generate a
    # secret of their own and need no such allowance.
    environment: str = Field("production", pattern="^(production|development)$")

    # Tokens: HS256, shared by auth (signs) and the gateway (verifies).
    jwt_secret: str = DEV_JWT_SECRET
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
    # SIGTERM: for this long the gateway keeps its port open answering /readyz 503 and refusing
    # new sockets (so a load balancer takes it out of rotation before the port closes); its
    # sockets are closed with 1012 as soon as their in-flight requests are answered.
    gateway_drain_seconds: float = 2.0
    # message.send per user, over all gateways and devices (a token bucket in Redis):
    # refilled at send_rate_per_second, holding at most send_burst.
    send_rate_per_second: float = Field(20.0, gt=0)
    send_burst: int = Field(50, ge=1)
    sync_batch_size: int = 500
    # Acknowledged positions (cursors, delivered markers) wait in chat's memory and are written
    # this often (services/chat/storage/coalesced.py): what a chat crash can make a device see again.
    positions_flush_seconds: float = Field(1.0, gt=0)
    # Conversations' last_seq waits in chat's memory and is written this often
    # (services/chat/storage/appender.py). It is a floor every reader reads past, so a late one
    # costs reads of a few more messages, not correctness; one write per active conversation
    # per flush is what it saves (issue 26: 0.07 writes per message at 1 s).
    last_seq_flush_seconds: float = Field(5.0, gt=0)
    # Disappearing messages are hidden from expires_at on and deleted by chat about this often.
    expired_sweep_seconds: float = Field(30.0, gt=0)
    # message.send and message.ack go to chat many to a command (services/gateway/batching.py):
    # at most this many items in one, and this many commands of each kind out at once per
    # gateway (what arrives meanwhile waits and goes in the next, larger, batch), shared out
    # among chat's partitions, one each at least (services/gateway/chat_batches.py).
    batch_max_items: int = Field(256, ge=1, le=512)
    batches_in_flight: int = Field(8, ge=1)
    # Chat's message.send and message.ack go to this many partition queues, by conversation
    # (shared/partitions.py), each consumed by one chat replica at a time, which holds its lease
    # in Redis (shared/partition_consumers.py): a conversation's seqs come from one replica's
    # memory, without clashes between replicas (issue 26). Every gateway and chat replica of a
    # deployment must use the same number (a gateway's publish to a partition no chat declared
    # is answered `unavailable`); at most a few replicas per partition are useful, so keep it
    # above the number of chat replicas. 0: no partitions, every replica takes every send from
    # chat's one queue (as before issue 26).
    chat_partitions: int = Field(16, ge=0, le=1024)
    # A replica's lease on a partition lasts this long unless renewed (every third of it): a
    # replica killed -9 has its partitions taken over by the others within about 4/3 of it
    # (its sends wait meanwhile; clients retry on `unavailable`). Its heartbeat, by which the
    # others count the live replicas, lasts as long. Shorter: faster takeover, more Redis calls
    # (one script per partition held per tick) and more handovers when a replica stalls.
    chat_partition_lease_seconds: float = Field(4.0, ge=0.5)
    # Bytes of frames waiting for one socket (replies, pushes, and live pushes held back while
    # it syncs) before it is closed with 4008: it reconnects and resyncs, losing nothing.
    outbound_queue_max_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024)
    # Body of any HTTP request but the file upload (which streams under max_upload_bytes).
    http_max_body_bytes: int = Field(64 * 1024, ge=1024)
    # A socket that has not logged in (auth.login / auth.resume) this long after opening is closed (4401).
    ws_login_deadline_seconds: float = Field(30.0, gt=0)
    # Open sockets per client address (bound or not), sockets not yet logged in per address,
    # and bound sockets per user (over this gateway); past a cap a new socket is refused.
    ws_max_sockets_per_address: int = Field(2000, ge=1)
    ws_max_unbound_per_address: int = Field(200, ge=1)
    ws_max_sockets_per_user: int = Field(32, ge=1)
    # Origins a browser may open the WebSocket from, besides the gateway's own host
    # (`https://chat.example.com`); "*" allows any. Clients that send no Origin are not browsers.
    allowed_origins: list[str] = Field(default_factory=list)
    # Take the client address from the last X-Forwarded-For entry (behind a proxy we run, e.g.
    # deploy/proxy), else from the TCP peer.
    trust_forwarded_for: bool = False

    # Abuse limits, counted in Redis per client address and per account (auth).
    # Failed logins: this many free, then each further failure doubles the wait before the next
    # attempt (from login_backoff_base_seconds up to login_backoff_max_seconds); a success or the
    # window passing clears it. Per account the count is kept per address too, so nobody can
    # lock someone else out from another address beyond the (short) account-wide backoff.
    login_free_failures_per_account: int = Field(5, ge=1)
    login_free_failures_per_address: int = Field(20, ge=1)
    login_backoff_base_seconds: float = Field(1.0, gt=0)
    login_backoff_max_seconds: float = Field(300.0, gt=0)
    login_failure_window_seconds: float = Field(900.0, gt=0)
    # Logins in flight are held to the free failures left (so that concurrent guesses cannot slip
    # past the count); one beyond them waits in line this long for a slot (an office logging in at
    # once), then is refused `rate_limited`. Keep it under rpc_timeout_seconds.
    login_wait_in_line_seconds: float = Field(8.0, ge=0)
    # Registrations per client address: a token bucket (per hour, burst).
    register_per_address_per_hour: float = Field(20.0, gt=0)
    register_burst_per_address: int = Field(10, ge=1)

    # message.edit: the sender may edit a message this long after sending it.
    edit_window_seconds: float = Field(24 * 3600, gt=0)
    # Burn after reading: a message never opened is destroyed this long after sending; chat
    # destroys what is due this often.
    burn_unopened_seconds: float = Field(7 * 24 * 3600, gt=0)
    burn_check_seconds: float = Field(1.0, gt=0)

    # Calls (docs/protocol.md "Calls"): an unanswered call ends after call_ring_seconds; the calls
    # service checks ringing calls and the participants' sockets this often (a call whose participant's
    # socket is gone ends, within presence_ttl_seconds of a gateway dying). call.invite per
    # user: a token bucket (per minute, burst).
    call_ring_seconds: float = Field(45.0, gt=0)
    call_check_seconds: float = Field(1.0, gt=0)
    call_invites_per_minute: float = Field(10.0, gt=0)
    call_invite_burst: int = Field(5, ge=1)
    # ICE servers handed out by calls.ice_servers. TURN credentials follow coturn's shared-secret
    # scheme (use-auth-secret / static-auth-secret): username `expiry:user_id`, password
    # base64(HMAC-SHA1(turn_secret, username)), valid turn_credential_ttl_seconds. No TURN URL or
    # no secret: STUN only (or nothing), and calls still work on one network.
    stun_urls: list[str] = Field(default_factory=list)
    turn_urls: list[str] = Field(default_factory=list)
    turn_secret: str = ""
    turn_credential_ttl_seconds: int = Field(3600, ge=60)

    # Offline push (docs/push.md; services/push). Web Push: the deployment's VAPID key pair, made
    # once and kept like the JWT secret: the private key as PEM in push_vapid_private_key_file
    # (created there on first start if missing; development only), or in push_vapid_private_key
    # (PEM). The subject is a contact for push services (mailto: or https:).
    push_vapid_private_key: str = ""
    push_vapid_private_key_file: str = ".run/vapid-private.pem"
    push_vapid_subject: str = "mailto:push@parley.invalid"
    # FCM HTTP v1: off unless a project id and a service-account JSON file are set. The OAuth
    # token and send endpoints can be pointed at a stand-in (tests).
    push_fcm_project_id: str = ""
    push_fcm_credentials_file: str = ""
    push_fcm_url: str = "https://fcm.googleapis.com"
    push_fcm_token_url: str = "https://oauth2.googleapis.com/token"
    # APNs (token-based, HTTP/2): off unless a .p8 key file, its key id, the team id and the
    # app's bundle id (the topic) are set.
    push_apns_key_file: str = ""
    push_apns_key_id: str = ""
    push_apns_team_id: str = ""
    push_apns_topic: str = ""
    push_apns_url: str = "https://api.push.apple.com"
    # Sending: attempts per notification (backoff between them, honouring Retry-After), the
    # provider call's timeout, notifications in flight per replica, and how long a message
    # notification may wait at the push service before it is not worth showing (its TTL).
    push_max_attempts: int = Field(5, ge=1)
    push_timeout_seconds: float = Field(10.0, gt=0)
    push_concurrency: int = Field(32, ge=1)
    push_message_ttl_seconds: int = Field(24 * 3600, ge=0)
    push_call_ttl_seconds: int = Field(45, ge=0)

    # End-to-end encryption (docs/security.md). keys.claim per user, one token per device claimed
    # (a token bucket: per minute, burst).
    key_claims_per_minute: float = Field(600.0, gt=0)
    key_claim_burst: int = Field(200, ge=1)
    # Each chat replica looks this often for direct conversations newly encrypted (by any
    # replica) among those it holds in memory; conversations.encrypt dates encryption twice this
    # far ahead and answers then, so that from `encrypted_at` on every replica refuses plaintext
    # (at most 3 s: that answer must come well within rpc_timeout_seconds).
    encryption_watch_seconds: float = Field(1.0, gt=0, le=3)
    # To-device messages (devices.send): kept until acknowledged, at most this long, and at most
    # this many and bytes waiting per target device; expired ones are deleted this often.
    device_message_ttl_seconds: float = Field(7 * 24 * 3600, gt=0)
    device_messages_max: int = Field(1000, ge=1)
    device_messages_max_bytes: int = Field(32 * 1024 * 1024, ge=1)
    device_messages_sweep_seconds: float = Field(300.0, gt=0)

    # Files: the largest upload accepted (bytes); bigger ones get 413 as soon as they pass it.
    max_upload_bytes: int = 100 * 1024 * 1024
    # An upload that sends nothing for this long is abandoned (its chunks deleted).
    upload_idle_seconds: float = 60.0


def _unsafe(secret: str) -> bool:
    lowered = secret.lower()
    return secret == DEV_JWT_SECRET or len(secret) < MIN_SECRET_LENGTH or any(m in lowered for m in PLACEHOLDER_MARKERS)


def refuse_unsafe_secrets(settings: Settings) -> None:
    """Raise UnsafeSecret (services call this first thing) for a known or placeholder secret
    outside development: a token signed with a public JWT secret would be accepted, and anyone
    could mint TURN credentials (and relay through our coturn) with a public TURN secret."""
    if settings.environment == "development":
        return
    advice = (
        f"a placeholder or shorter than {MIN_SECRET_LENGTH} characters; set it to a long random string "
        "(openssl rand -hex 32), or PARLEY_ENVIRONMENT=development for a throwaway local run"
    )
    if _unsafe(settings.jwt_secret):
        raise UnsafeSecret(f"PARLEY_JWT_SECRET is the built-in development secret, {advice}")
    if settings.turn_urls and settings.turn_secret and _unsafe(settings.turn_secret):
        raise UnsafeSecret(f"PARLEY_TURN_SECRET is {advice}")


@lru_cache
def get_settings() -> Settings:
    return Settings()
