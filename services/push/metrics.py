"""The push service's metrics (docs/push.md "Reliability"), per provider."""
from prometheus_client import Counter, Histogram

# Every attempt's outcome (sent, gone, retry, failed), and the notifications given up after
# push_max_attempts (given_up) or for want of a provider for their kind (no_provider).
PUSH_SENT = Counter("parley_push_sent_total", "Notifications sent to push providers, by outcome", ["provider", "outcome"])
PUSH_LATENCY = Histogram(
    "parley_push_latency_seconds",
    "Time a push provider took to answer one notification",
    ["provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# Notifications not sent again: a repeated event (at least once), a dedup key already set.
PUSH_DUPLICATES = Counter("parley_push_duplicates_total", "Notifications skipped as already sent", ["provider"])
