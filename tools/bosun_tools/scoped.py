"""A value current for a block of code and for every task and thread context started in it: what a process
records its metrics into and makes its spans with (a test activates its own, so runs never mix)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Generic, TypeVar

T = TypeVar("T")


class Scoped(Generic[T]):
    """``activated(value)`` makes ``value`` current within a ``with`` block; ``active()`` is the current one
    (None outside any block)."""

    def __init__(self, name: str) -> None:
        self._current: ContextVar[T | None] = ContextVar(name, default=None)

    @contextlib.contextmanager
    def activated(self, value: T) -> Iterator[T]:
        token = self._current.set(value)
        try:
            yield value
        finally:
            self._current.reset(token)

    def active(self) -> T | None:
        return self._current.get()
