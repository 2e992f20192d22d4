"""SQLite: writes run in one trip to the connection's thread, and commit in groups.

aiosqlite runs each statement on its connection's thread and hands the result back
to the event loop; Tortoise holds the connection's lock from BEGIN to COMMIT. Under
load every hand-back waits for a turn of a busy loop, and every COMMIT waits for its
fsync, so a transaction of five statements held the lock, and with it every other
writer in the process, for five loop turns and a disk flush. SQLite throughput was
bounded by those waits, not by CPU (README, Performance).

`run` instead sends a write's statements to the thread as one function. Writes that
arrive while another group is being written wait for the lock together and go in the
next group: one transaction, each write in a savepoint of its own (a write that fails
rolls back alone), one COMMIT and one fsync for all of them: group commit, as
PostgreSQL does for concurrent commits. No caller hears of its write before the
group's COMMIT returned, so durability is what a transaction of its own gave. Inside
a caller's transaction a write runs in one hop, in a savepoint of that transaction.
It is the SQLite counterpart of PostgreSQL's one-statement writes (resolvers/traces.py).

This uses two private members of aiosqlite's Connection, `_execute` (queue a function
for the connection's thread) and `_conn` (the sqlite3 connection), as Tortoise's own
SQLite client does for the latter; the whole SQLite suite runs through them.
"""

import asyncio
import itertools
import sqlite3
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tortoise.backends.base.client import TransactionalDBClient
from tortoise.exceptions import IntegrityError, OperationalError

Statement = tuple[str, list[Any]]
Work = Callable[[sqlite3.Connection], Any]
GROUP_MAX = 64  # writes per group commit: bounds how long one group holds the lock
_names = itertools.count()


def is_sqlite(conn: Any) -> bool:
    return bool(conn.capabilities.dialect == "sqlite")


@contextmanager
def _savepoint(db: sqlite3.Connection) -> Iterator[None]:
    """All or nothing, on the connection's thread: a savepoint (a transaction of its own
    when none is open)."""
    name = f"hop_{next(_names)}"
    db.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        if db.in_transaction:  # some errors roll the whole transaction back themselves
            db.execute(f"ROLLBACK TO {name}")
            db.execute(f"RELEASE {name}")
        raise
    db.execute(f"RELEASE {name}")


def execute(db: sqlite3.Connection, statements: list[Statement]) -> None:
    for sql, values in statements:
        db.execute(sql, values)


async def write(conn: Any, statements: list[Statement]) -> None:
    """Run `statements` all or nothing."""
    await run(conn, lambda db: execute(db, statements))


async def run(conn: Any, work: Work) -> Any:
    """`work(db)` on the connection's thread in a savepoint of its own (all or nothing),
    with sqlite3's errors as Tortoise's; its result once committed."""
    try:
        if isinstance(conn, TransactionalDBClient):  # the caller's transaction
            async with conn.acquire_connection() as connection:
                return await connection._execute(_atomically, connection._conn, work)
        return await _group_of(conn).add(conn, work)
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(exc) from exc
    except sqlite3.OperationalError as exc:
        raise OperationalError(exc) from exc


def _atomically(db: sqlite3.Connection, work: Work) -> Any:
    with _savepoint(db):
        return work(db)


@dataclass
class _Group:
    """The writes waiting for the next group commit on one connection."""

    pending: list[tuple[Work, asyncio.Future[Any]]] = field(default_factory=list)
    flushing: set[asyncio.Task[None]] = field(default_factory=set)

    async def add(self, conn: Any, work: Work) -> Any:
        done = asyncio.get_running_loop().create_future()
        self.pending.append((work, done))
        if len(self.pending) == 1:  # the first of a group starts its commit
            self._start(conn)
        return await done

    def _start(self, conn: Any) -> None:
        # A task of its own: a cancelled caller must not strand the others' writes.
        flush = asyncio.create_task(self._flush(conn))
        self.flushing.add(flush)
        flush.add_done_callback(self.flushing.discard)

    async def _flush(self, conn: Any) -> None:
        batch: list[tuple[Work, asyncio.Future[Any]]] = []
        try:
            async with conn.acquire_connection() as connection:  # more join meanwhile
                batch, self.pending = self.pending[:GROUP_MAX], self.pending[GROUP_MAX:]
                if self.pending:  # over the cap: the rest go in the next group
                    self._start(conn)
                outcomes = await connection._execute(_commit_group, connection._conn, batch)
        except BaseException as exc:  # COMMIT failed (nothing written), or shutdown
            if not batch:  # stopped before taking its group: fail that instead
                batch, self.pending = self.pending, []
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for (_, done), (result, error) in zip(batch, outcomes, strict=True):
            if done.done():
                continue  # its caller was cancelled; the write stands, as any in flight
            if error is None:
                done.set_result(result)
            else:
                done.set_exception(error)


def _commit_group(
    db: sqlite3.Connection, batch: list[tuple[Work, asyncio.Future[Any]]]
) -> list[tuple[Any, BaseException | None]]:
    outcomes: list[tuple[Any, BaseException | None]] = []
    # IMMEDIATE: the write lock is taken once, up front; another process holding it
    # fails the group after the busy timeout, not each of its writes in turn.
    db.execute("BEGIN IMMEDIATE")
    try:
        for work, _ in batch:
            try:
                outcomes.append((_atomically(db, work), None))
            except Exception as exc:  # this write rolled back to its savepoint alone
                outcomes.append((None, exc))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return outcomes


_groups: "weakref.WeakKeyDictionary[Any, _Group]" = weakref.WeakKeyDictionary()


def _group_of(conn: Any) -> _Group:
    group = _groups.get(conn)
    if group is None:
        group = _groups[conn] = _Group()
    return group
