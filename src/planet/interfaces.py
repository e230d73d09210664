"""The seams of the daemon: what a component needs of a collaborator that has (or will
have) more than one implementation. Production's are in :mod:`planet.workers` and
:func:`twisted.internet.threads.deferToThread`; :mod:`planet.testing` has the fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from planet.model import Entry, ParsedFeed

__all__ = ["Parser", "RunInThread"]

#: Runs blocking work (a page render, a snapshot write, a config read) where it cannot
#: block the reactor: ``run_in_thread(f, *args) -> Deferred`` firing with ``f(*args)``.
#: The daemon's is :func:`~twisted.internet.threads.deferToThread`; tests run inline.
RunInThread = Callable[..., "Deferred[Any]"]


class Parser(Protocol):
    """Turns a fetched body into a :class:`~planet.model.ParsedFeed`, and sanitizes stored
    entries again under the current policy, off the reactor: in worker processes
    (:class:`~planet.workers.ProcessParser`, the daemon's), in threads
    (:class:`~planet.workers.ThreadParser`) or inline
    (:class:`~planet.workers.InlineParser`, the tests')."""

    def __call__(
        self,
        body: bytes,
        url: str,
        fetched_at: datetime,
        content_type: str | None,
        max_entries: int,
        max_entry_bytes: int = 0,
        timeout: float | None = None,
    ) -> Deferred[ParsedFeed]:
        """:func:`planet.parse.parse_feed` of the arguments, within ``timeout`` seconds
        (None: no limit): the result, or :class:`~planet.workers.ParseTimeoutError`."""

    def resanitize(
        self, entries: Sequence[Entry], max_entry_bytes: int, timeout: float | None = None
    ) -> Deferred[list[Entry]]:
        """:func:`planet.parse.resanitize_entries` of ``entries``, in order."""
