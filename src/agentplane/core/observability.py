"""Metrics (Prometheus, via prometheus-client), request ids and structured logs.

- The metrics live here; `/metrics` (resolvers.server.prometheus_text) renders them.
- Every HTTP request gets a request id (http.observability; a sane incoming
  `X-Request-ID` is kept), returned in the `X-Request-ID` header, attached to every
  log line written while the request runs, and to every GraphQL error (`extensions.requestId`).
- Logs are JSON lines (python-json-logger) unless `AGENTPLANE_LOG_FORMAT=text`.
"""

import logging
import re
import sys
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from pythonjsonlogger.json import JsonFormatter

from agentplane.core import request_context

HTTP_REQUESTS = Counter(
    "agentplane_http_requests_total", "HTTP requests", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "agentplane_http_request_duration_seconds", "HTTP request latency", ["route", "method"]
)
GRAPHQL_OPERATIONS = Counter(
    "agentplane_graphql_operations_total",
    "GraphQL operations",
    ["type", "operation", "outcome"],
)
GRAPHQL_LATENCY = Histogram(
    "agentplane_graphql_operation_duration_seconds",
    "GraphQL operation latency (parse to result)",
    ["type", "operation"],
)
COMPILED_QUERIES = Counter(
    "agentplane_graphql_compiled_total",
    "Queries answered from a compiled plan (hit) or handed back to graphql-core (fallback)",
    ["outcome"],
)
FAST_PATH = Counter(
    "agentplane_graphql_fast_path_total",
    "HTTP GraphQL requests answered before Strawberry's view (answered) or handed to it",
    ["outcome"],
)
WEBSOCKETS_ACTIVE = Gauge("agentplane_websockets_active", "Open websocket connections")
SUBSCRIPTIONS_ACTIVE = Gauge("agentplane_subscriptions_active", "Running GraphQL subscriptions")
QUEUE_DEPTH = Gauge("agentplane_queue_depth", "Tasks waiting in the queue (at scrape time)")
# Leak watch: both return to their baseline when subscribers come and go (bench/fanout.py).
ASYNCIO_TASKS = Gauge("agentplane_asyncio_tasks", "asyncio tasks alive in this process")
BROKER_CHANNELS = Gauge("agentplane_broker_channels", "Channels this process subscribes to")
BROKER_SUBSCRIPTIONS = Gauge(
    "agentplane_broker_subscriptions",
    "Subscriptions to broker channels held in this process (one per live feed, not per "
    "subscriber; plus listeners such as the worker's and revocations')",
)
LIVE_FEEDS = Gauge("agentplane_live_feeds", "Live feeds in this process (subscriptions/feeds.py)")
LIVE_FEED_MEMBERS = Gauge(
    "agentplane_live_feed_members",
    "Subscribers served by this process's live feeds: websocket operations, event streams",
)
TASKS_FINISHED = Counter("agentplane_tasks_finished_total", "Tasks that ended", ["outcome"])
TASK_DURATION = Histogram(
    "agentplane_task_duration_seconds",
    "Task run time, from start to its terminal status",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
SPEND = Counter("agentplane_spend_usd_total", "Priced model usage, USD", ["model"])
TOOL_CALLS = Counter(
    "agentplane_tool_calls_total",
    "Tool calls by source (builtin, http, mcp) and outcome (ok or the error code)",
    ["source", "outcome"],
)
TOOL_LATENCY = Histogram(
    "agentplane_tool_call_duration_seconds",
    "Tool call latency, arguments checked to result",
    ["source"],
    buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

# Operation names come from clients: past this many distinct ones, they count as "other".
MAX_OPERATION_NAMES = 200
_operation_names: set[str] = set()


def operation_label(name: str | None) -> str:
    if not name:
        return "anonymous"
    if name in _operation_names:
        return name
    if len(_operation_names) < MAX_OPERATION_NAMES and re.fullmatch(r"[_A-Za-z]\w{0,99}", name):
        _operation_names.add(name)
        return name
    return "other"


def task_finished(outcome: str, seconds: float | None) -> None:
    TASKS_FINISHED.labels(outcome).inc()
    if seconds is not None:
        TASK_DURATION.labels(outcome).observe(seconds)


def tool_called(source: str, error_code: str | None, seconds: float) -> None:
    TOOL_CALLS.labels(source, error_code or "ok").inc()
    TOOL_LATENCY.labels(source).observe(seconds)


def spent(model: str, usd: float) -> None:
    if usd > 0:
        SPEND.labels(model).inc(usd)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_context.request_id()
        return True


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    """Root logging for `serve` and `worker`: JSON lines with the request id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if fmt == "text":
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    else:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def error_extensions() -> dict[str, Any]:
    request_id = request_context.request_id()
    return {"requestId": request_id} if request_id else {}
