"""The gateway's own prometheus metrics (served at /metrics with the shared ones)."""
from prometheus_client import Counter, Gauge

CONNECTIONS = Gauge("parley_gateway_connections", "WebSocket connections open on this gateway")
FRAMES = Counter("parley_gateway_frames_total", "Client frames answered", ["operation", "outcome"])
