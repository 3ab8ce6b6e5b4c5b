"""The gateway's own prometheus metrics (served at /metrics with the shared ones)."""
from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge("parley_gateway_connections", "WebSocket connections open on this gateway")
FRAMES = Counter("parley_gateway_frames_total", "Client frames answered", ["operation", "outcome"])
UPLOAD_BYTES = Counter("parley_gateway_upload_bytes_total", "File bytes received from clients (POST /files)")
DOWNLOAD_BYTES = Counter("parley_gateway_download_bytes_total", "File bytes sent to clients (GET /files/{id})")
UPLOADS = Counter("parley_gateway_uploads_total", "File uploads ended, by outcome", ["outcome"])
SLOW_CLOSES = Counter("parley_gateway_slow_closes_total", "Sockets closed (4008) for falling behind their byte bound")
SOCKETS_REFUSED = Counter("parley_gateway_sockets_refused_total", "WebSocket upgrades refused, by reason", ["reason"])
BATCH_ITEMS = Histogram(
    "parley_gateway_batch_items", "Items per command sent to chat (message.send, message.ack batches)", ["operation"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
