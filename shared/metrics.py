"""Prometheus metrics shared by the services (the gateway adds its own)."""
from prometheus_client import Counter, Gauge, Histogram, start_http_server

COMMANDS = Counter("parley_commands_total", "Commands handled", ["operation", "outcome"])
COMMAND_SECONDS = Histogram(
    "parley_command_seconds",
    "Time to handle one command",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Replies that could not be published (the asker's reply queue is gone: its gateway died).
REPLIES_DROPPED = Counter("parley_replies_dropped_total", "RPC replies nobody could receive", ["operation"])
# Commands whose caller had given up (past their deadline) when a replica took them: not run.
COMMANDS_EXPIRED = Counter("parley_commands_expired_total", "Commands dropped past their deadline", ["operation"])
# Runs of periodic jobs by this process: a job run once across replicas (shared/periodic.py)
# counts on one replica at a time, and the sum over replicas says whether it ran once per round.
PERIODIC_RUNS = Counter("parley_periodic_runs_total", "Periodic job runs done by this process", ["job"])
# Partition queues this replica consumes (shared/partition_consumers.py): its fair share while
# Redis answers, every partition while it fails open.
PARTITIONS_CONSUMED = Gauge("parley_partitions_consumed", "Partition queues this replica consumes", ["service"])
PARTITIONS_FAILING_OPEN = Gauge(
    "parley_partitions_failing_open", "1 while Redis is away and this replica consumes every partition", ["service"]
)
RPC_SECONDS = Histogram(
    "parley_rpc_seconds",
    "Round trip of one RPC as the caller sees it",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def serve_metrics(port: int) -> None:
    """Expose /metrics on `port` for a service without its own HTTP server (0: off)."""
    if port:
        start_http_server(port)
