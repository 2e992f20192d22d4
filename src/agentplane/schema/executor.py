"""Execute a live subscription event once per process, not once per subscriber.

When many sockets watch the same task with the same operation, every one of them
would run the same selection set over the same Step: the dominant cost of a wide
fan-out. The live stream hands every local subscriber the same Step object per
event (see subscriptions/streams.py); this executor memoises the result of an
event by (step, operation document, the variables its selections use), so the
selection set runs once and each subscriber gets a copy of the result.

Only `taskEvents` is shared: its Step selections read nothing of the caller, and
each subscriber was authorised when it subscribed.
"""

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import orjson
from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    visit,
)
from graphql.language import Visitor

from agentplane.models import Step
from agentplane.schema.execution import ExecutionContext

SHARED_ROOT_FIELDS = frozenset({"taskEvents"})
_MAX_ENTRIES = 4096
_results: OrderedDict[tuple[Any, ...], ExecutionResult] = OrderedDict()
_selection_variables: dict[int, tuple[str, ...] | None] = {}
_UNKNOWN = ("<not computed>",)


class _VariableCollector(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.names.add(node.name.value)


def _shared_variables(
    operation: OperationDefinitionNode, fragments: Iterable[FragmentDefinitionNode]
) -> tuple[str, ...] | None:
    """Variables the event's selections depend on, or None when the operation is not shared.

    Arguments of the root field (taskId, afterSeq) pick the stream, not the result.
    """
    fields = operation.selection_set.selections
    if (
        operation.operation != OperationType.SUBSCRIPTION
        or len(fields) != 1
        or not isinstance(fields[0], FieldNode)
        or fields[0].name.value not in SHARED_ROOT_FIELDS
        or fields[0].directives
    ):
        return None
    collector = _VariableCollector()
    if fields[0].selection_set is not None:
        visit(fields[0].selection_set, collector)
    for fragment in fragments:
        visit(fragment, collector)
    return tuple(sorted(collector.names))


class SharedEventExecutor(ExecutionContext):
    def execute_operation(self, serially: bool | None = None) -> Any:
        step = self.root_value
        if not isinstance(step, Step) or step.id is None:
            return super().execute_operation(serially)
        key_of_operation = id(self.operation)
        names = _selection_variables.get(key_of_operation, _UNKNOWN)
        if names is _UNKNOWN:
            names = _shared_variables(self.operation, self.fragment_definitions.values())
            _selection_variables[key_of_operation] = names
        if names is None:
            return super().execute_operation(serially)
        coerced = self.variable_values.coerced
        used = orjson.dumps({n: coerced.get(n) for n in names}, option=orjson.OPT_SORT_KEYS)
        key = (step.id, key_of_operation, used)
        cached = _results.get(key)
        if cached is not None:
            _results.move_to_end(key)
            return _copy(cached)
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            return self._remember_async(key, result)
        return self._remember(key, result)

    def _remember(self, key: tuple[Any, ...], result: Any) -> Any:
        _results[key] = result
        if len(_results) > _MAX_ENTRIES:
            _results.popitem(last=False)
        return _copy(result)

    async def _remember_async(self, key: tuple[Any, ...], result: Any) -> Any:
        return self._remember(key, await result)


def _copy(result: ExecutionResult) -> ExecutionResult:
    # Each subscriber gets its own result: later stages replace `errors` on it.
    errors = list(result.errors) if result.errors else None
    return ExecutionResult(data=result.data, errors=errors, extensions=result.extensions)
