"""Fakes and helpers for testing planet and code built on it (as txacme ships MemoryStore).

Nothing here is used by the daemon itself.
"""

from __future__ import annotations

import random
from datetime import datetime

from attrs import evolve

from planet.config import Config, parse_config
from planet.model import FetchResult, ParsedFeed
from planet.store import ApplyStats, Store
from planet.update import update_feed
from planet.workers import inline_parser

__all__ = ["inline_parser", "record_fetch"]

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
