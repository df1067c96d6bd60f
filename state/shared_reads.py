"""One database read for every live push of the same page in this web worker.

When an order fills, every client showing that member's page gets a push
(``state.live``) and each one re-reads the page.  With many clients of one
member (tabs, devices, a shared screen) those reads are the same query with
the same answer: at 200 clients most of a push's cost was 200 copies of it.
``shared`` lets them share one.

Correctness is freshness: a push is triggered by a bus message that was
published after its transaction committed, so a read that STARTED after the
message was received sees the change.  A push sets ``fresh_after`` (the
monotonic time its batch arrived) for its reload; ``shared`` then returns a
result whose read started at or after that time (finished, or still running:
it waits for it), and otherwise reads itself and lets later pushes use that.
Outside a push (``fresh_after`` unset: a click, a page load) nothing is
shared: every such read is the caller's own.

Results are handed out as copies (``fresh_copy``): states are separate
objects even in one process (the in-memory state manager), so no two may
hold the same mutable list.
"""

from __future__ import annotations

import contextvars
import copy
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
WAIT_SECONDS = 5.0      # a waiter that gets no answer this long reads for itself
KEEP_SECONDS = 10.0     # results older than this are swept when the table grows
SWEEP_AT = 512

PLAIN = (str, int, float, bool, type(None))

fresh_after: contextvars.ContextVar[float | None] = contextvars.ContextVar("fresh_after", default=None)


def fresh_copy(value: Any) -> Any:
    """A deep copy of page data: dicts, lists and tuples of plain values rebuilt directly (a page's
    rows are 50 dicts of strings; ``copy.deepcopy`` and its memo cost a push several times as much),
    anything else through ``copy.deepcopy``."""
    if isinstance(value, PLAIN):
        return value
    if type(value) is dict:
        return {k: fresh_copy(v) for k, v in value.items()}
    if type(value) is list:
        return [fresh_copy(v) for v in value]
    if type(value) is tuple:
        return tuple(fresh_copy(v) for v in value)
    return copy.deepcopy(value)


def _as_is(value: Any) -> Any:
    return value


@dataclass
class _Read:
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    failed: bool = False


class SharedReads:
    """Single-flight reads keyed by what they read; thread-safe (pushes run their reads in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reads: dict[Hashable, _Read] = {}
        self.loads = 0  # reads actually run (what the tests count)

    def get(self, key: Hashable, load: Callable[[], T], since: float | None, *, copy: bool = True) -> T:
        if since is None:
            return load()
        with self._lock:
            read = self._reads.get(key)
            mine = read is None or read.started < since or (read.done.is_set() and read.failed)
            if mine:
                read = _Read(started=time.monotonic())
                self._reads[key] = read
                self._sweep(read.started)
        hand_out = fresh_copy if copy else _as_is
        if mine:
            return hand_out(self._run(read, load))
        if read.done.wait(WAIT_SECONDS) and not read.failed:
            return hand_out(read.value)
        return load()

    def _run(self, read: _Read, load: Callable[[], T]) -> T:
        try:
            read.value = load()
            with self._lock:
                self.loads += 1
            return read.value
        except BaseException:
            read.failed = True  # waiters read for themselves and get the error (or an answer) of their own
            raise
        finally:
            read.done.set()

    def _sweep(self, now: float) -> None:
        if len(self._reads) < SWEEP_AT:
            return
        for key in [k for k, r in self._reads.items() if r.done.is_set() and r.started < now - KEEP_SECONDS]:
            del self._reads[key]


READS = SharedReads()


def shared(key: Hashable, load: Callable[[], T], *, copy: bool = True) -> T:
    """``load()``, or a copy of the same read that started after this push's event arrived.

    ``copy=False`` for a result the caller only reads (it builds its own state values from it).
    """
    return READS.get(key, load, fresh_after.get(), copy=copy)
