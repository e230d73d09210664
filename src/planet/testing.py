"""Fakes and helpers for testing planet and code built on it (as txacme ships MemoryStore).

Nothing here is used by the daemon itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from attrs import evolve
from twisted.internet.defer import Deferred, maybeDeferred

from planet.config import Config, parse_config
from planet.model import FetchResult, ParsedFeed
from planet.store import ApplyStats, Store
from planet.update import update_feed
from planet.workers import InlineParser, inline_parser

__all__ = ["HeldParser", "InlineParser", "inline_parser", "record_fetch", "run_inline"]

T = TypeVar("T")


def run_inline(f: Callable[..., T], *args: Any) -> Deferred[T]:
    """A :data:`planet.interfaces.RunInThread` that runs ``f`` on the calling thread: renders
    and snapshot writes happen at once, under a test's Clock."""
    return maybeDeferred(f, *args)


class HeldParser(InlineParser):
    """A parser whose parses wait until the test fires them: each call adds ``(deferred,
    arguments)`` to :attr:`held` (a parse the cycle is still waiting for)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[Deferred[ParsedFeed], tuple[Any, ...]]] = []

    def __call__(self, *args: Any) -> Deferred[ParsedFeed]:
        d: Deferred[ParsedFeed] = Deferred()
        self.held.append((d, args))
        return d


_DEFAULTS = parse_config("[Planet]\n", "<defaults>")


def record_fetch(
    store: Store,
    url: str,
    result: FetchResult,
    parsed: ParsedFeed | None,
    now: datetime,
    config: Config | None = None,
    rng: random.Random | None = None,
) -> ApplyStats:
    """Apply one fetch of ``url`` to ``store`` as the daemon does: decide, then apply."""
    if config is None:
        # The store's own retention, as the daemon's config would have set it.
        age = store.max_entry_age
        config = evolve(_DEFAULTS, max_entry_age_days=age.days if age is not None else 0)
    before = store.state(url)
    update = update_feed(config, before, result, parsed, now, rng or random.Random(0))
    return store.apply(url, update)
