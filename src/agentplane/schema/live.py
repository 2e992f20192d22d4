"""Multiplexed subscription delivery (`taskEvents`, `taskUpdates`, `taskOutput`,
`approvalUpdates`, `documentUpdates`, `budgetAlerts`): one execution and one
serialisation per event.

Stock subscription handling runs every event through the whole result pipeline once
per subscriber (execute, post-process, build and serialise the message), which made a
wide fan-out cost seconds. As Hasura does it, a step is instead executed and
serialised once per process for each distinct operation (its document and the
variables its selections use), and every websocket subscribed with that operation
gets the same payload text inside its own frame (a websocket protocol's message, or an
SSE event), written by the live feed (subscriptions/feeds.py).

Authorisation is unaffected: a subscriber is checked when it subscribes. A selection
that reaches a field whose resolver reads the caller (its `info`: loaders, the actor)
is shared only between subscribers with the same actor, rendered by one of them as
the stock path would; any other selection renders the same for every subscriber the
feed serves. A result with errors is not shared: the event goes through the stock
pipeline, so errors are rendered exactly as anywhere else.
"""

from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLSchema,
    OperationDefinitionNode,
    TypeInfo,
    TypeInfoVisitor,
    VariableNode,
    get_named_type,
    visit,
)
from graphql.language import Visitor
from strawberry.types import Info

from agentplane.subscriptions.channel_feed import complete_now

SHARED_ROOT_FIELDS = frozenset(
    {
        "taskEvents",
        "taskUpdates",
        "taskOutput",
        "approvalUpdates",
        "documentUpdates",
        "budgetAlerts",
    }
)
_MAX_PAYLOADS = 4096


@dataclass(frozen=True)
class Socket:
    """Where one subscription's frames go: its websocket, framed for its protocol."""

    send_text: Callable[[str], Coroutine[Any, Any, None]]
    frame_prefix: str  # e.g. '{"id":"1","type":"next","payload":'
    frame_suffix: str = "}"


# Set in each subscription's own task: the socket by our protocol handlers
# (graphql_app.py), the subscription's executor by the execution context (execution.py).
_socket: ContextVar[Socket | None] = ContextVar("live_socket", default=None)
_executor: ContextVar[Any] = ContextVar("live_executor", default=None)


def bind_socket(
    send_text: Callable[[str], Coroutine[Any, Any, None]], message: dict[str, str]
) -> None:
    """`message`: the protocol's data message without its payload, e.g. {"id", "type"}."""
    _socket.set(Socket(send_text, orjson.dumps(message).decode()[:-1] + ',"payload":'))


def bind_sse(send_text: Callable[[str], Coroutine[Any, Any, None]]) -> None:
    """An SSE response (GraphQL over SSE, distinct connections): a `next` event each."""
    _socket.set(Socket(send_text, "event: next\r\ndata: ", "\r\n\r\n"))


def bind_executor(executor: Any) -> None:
    _executor.set(executor)


# (event key, id(operation), used variables, actor or ANY) -> (operation, payload). The
# operation is kept so that its id cannot be reused by another document while the entry
# lives.
_payloads: OrderedDict[tuple[Hashable, int, bytes, Hashable], tuple[OperationDefinitionNode, str]]
_payloads = OrderedDict()
ANY = "any caller"  # the actor part of the key of a selection that reads nothing of it


class _VariableCollector(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.names.add(node.name.value)


def _selection_variables(
    operation: OperationDefinitionNode, fragments: Iterable[FragmentDefinitionNode]
) -> list[str] | None:
    """Variables the event's selections use, or None when the operation is not shareable.

    Arguments of the root field (taskId, afterSeq) pick the stream, not the result.
    """
    fields = operation.selection_set.selections
    if (
        len(fields) != 1
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
    return sorted(collector.names)


class _CallerReads(Visitor):
    """Finds a field whose resolver takes `info` (and so may read the caller), or one
    with permission classes or field extensions; unknown fields count as such too."""

    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.found = False

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        field = self.type_info.get_field_def()
        definition = field.extensions.get("strawberry-definition") if field else None
        resolver = getattr(definition, "base_resolver", None)
        if (
            field is None
            or (resolver is not None and resolver.info_parameter is not None)
            or getattr(definition, "permission_classes", None)
            or getattr(definition, "extensions", None)
        ):
            self.found = True


def _reads_caller(
    schema: GraphQLSchema,
    root: FieldNode,
    root_type: Any,
    fragments: Iterable[FragmentDefinitionNode],
) -> bool:
    checks: list[tuple[Any, Any]] = [(root.selection_set, get_named_type(root_type))]
    checks += [(fragment, None) for fragment in fragments]
    for node, initial in checks:
        if node is None:
            continue
        type_info = TypeInfo(schema, initial)
        reads = _CallerReads(type_info)
        visit(node, TypeInfoVisitor(type_info, reads))
        if reads.found:
            return True
    return False


class LiveFrames:
    """One subscription's socket, as a live feed's sink (subscriptions/feeds.py)."""

    def __init__(
        self,
        socket: Socket,
        executor: Any,
        operation: OperationDefinitionNode,
        used: bytes,
        caller: Hashable,
        convert: Callable[[Any], Any] | None = None,
    ) -> None:
        self.socket = socket
        self.executor = executor
        self.operation = operation
        self.key = (id(operation), used, caller)  # `used`: the values of the variables it uses
        self.convert = convert

    @classmethod
    def of(
        cls, info: Info[Any, Any], convert: Callable[[Any], Any] | None = None
    ) -> "LiveFrames | None":
        """For the calling subscription, if it is on one of our websockets and shareable.
        `convert`: what the subscription makes of a feed's event before it yields it."""
        socket, executor = _socket.get(), _executor.get()
        if socket is None or executor is None:
            return None
        operation = info.operation
        raw = info._raw_info
        fragments = raw.fragments.values()
        names = _selection_variables(operation, fragments)
        if names is None:
            return None
        values = info.variable_values
        used = orjson.dumps({n: values.get(n) for n in names}, option=orjson.OPT_SORT_KEYS)
        root = operation.selection_set.selections[0]
        assert isinstance(root, FieldNode)
        reads = _reads_caller(raw.schema, root, raw.return_type, fragments)
        caller = info.context.actor if reads else ANY
        return cls(socket, executor, operation, used, caller, convert)

    def _frame(self, payload: str) -> str:
        return self.socket.frame_prefix + payload + self.socket.frame_suffix

    async def send(self, payload: str) -> None:
        await self.socket.send_text(self._frame(payload))

    def send_now(self, payload: str) -> bool:
        return complete_now(self.socket.send_text(self._frame(payload)))

    async def payload(self, event: Hashable, value: Any) -> str | None:
        """The event's `{"data": …}` as JSON text, or None when its result had errors.

        `event` names the event (a step's id, a task update's number), `value` is it."""
        key = (event, *self.key)
        cached = _payloads.get(key)
        if cached is not None and cached[0] is self.operation:
            _payloads.move_to_end(key)
            return cached[1]
        if self.convert is not None:
            value = self.convert(value)
        result: Any = self.executor.build_per_event_executor(value).execute_operation(False)
        if self.executor.is_awaitable(result):
            result = await result
        assert isinstance(result, ExecutionResult)
        if result.errors:
            return None
        try:
            payload = orjson.dumps({"data": result.data}).decode()
        except TypeError:  # e.g. an integer beyond 64 bits: the stock encoder handles it
            return None
        _payloads[key] = (self.operation, payload)
        if len(_payloads) > _MAX_PAYLOADS:
            _payloads.popitem(last=False)
        return payload
