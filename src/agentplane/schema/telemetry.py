"""Per-operation metrics and an optional OpenTelemetry span: once per operation,
never per field (no `resolve` hook, so field resolution stays on its fast path)."""

import time
from collections.abc import Iterator
from typing import Any

from strawberry.extensions import SchemaExtension

from agentplane.core import observability as obs
from agentplane.core import request_context

try:  # optional: `pip install agentplane[otel]`; a no-op until an SDK is configured
    from opentelemetry import trace

    _tracer: Any = trace.get_tracer("agentplane.graphql")
except ImportError:  # pragma: no cover - exercised only without the extra
    _tracer = None


# Labelled children by their labels (bounded: operation names are capped by
# `operation_label`): `labels()` takes a lock and builds its key on every call.
_counters: dict[tuple[str, str, str], Any] = {}
_timers: dict[tuple[str, str], Any] = {}


def operation_started() -> tuple[float, Any]:
    """The start of one operation: its clock and its span (None without OpenTelemetry)."""
    span = _tracer.start_span("graphql.operation") if _tracer is not None else None
    return time.perf_counter(), span


def operation_finished(
    started: tuple[float, Any],
    kind: str,
    operation_name: str | None,
    failed: bool,
    *,
    subscription: bool = False,
) -> None:
    """Count the operation, time it (a subscription: one fewer running) and end its span.
    Shared by this extension and the HTTP fast path (http/fast_path.py)."""
    start, span = started
    name = obs.operation_label(operation_name)
    outcome = "error" if failed else "ok"
    counter = _counters.get((kind, name, outcome))
    if counter is None:
        counter = _counters[(kind, name, outcome)] = obs.GRAPHQL_OPERATIONS.labels(
            kind, name, outcome
        )
    counter.inc()
    if not subscription:
        timer = _timers.get((kind, name))
        if timer is None:
            timer = _timers[(kind, name)] = obs.GRAPHQL_LATENCY.labels(kind, name)
        timer.observe(time.perf_counter() - start)
    else:
        obs.SUBSCRIPTIONS_ACTIVE.dec()
    if span is not None:
        span.update_name(f"graphql.{kind} {name}")
        span.set_attribute("graphql.operation.type", kind)
        span.set_attribute("graphql.operation.name", name)
        span.set_attribute("graphql.errors", failed)
        request_id = request_context.request_id()
        if request_id:
            span.set_attribute("agentplane.request_id", request_id)
        span.end()


class OperationTelemetry(SchemaExtension):
    subscription = False

    def on_operation(self) -> Iterator[None]:
        started = operation_started()
        try:
            yield
        finally:
            ec = self.execution_context
            try:
                kind = ec.operation_type.value
            except Exception:  # unparsable document or unknown operation
                kind = "invalid"
            result = ec.result
            failed = bool(ec.pre_execution_errors) or bool(result is not None and result.errors)
            operation_finished(
                started, kind, ec.operation_name, failed, subscription=self.subscription
            )

    def on_execute(self) -> Iterator[None]:
        try:
            # Strawberry's own OperationType enum: compare by value.
            is_subscription = self.execution_context.operation_type.value == "subscription"
        except Exception:
            is_subscription = False
        if is_subscription and not self.subscription:
            self.subscription = True
            obs.SUBSCRIPTIONS_ACTIVE.inc()
        yield
