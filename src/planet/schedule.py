"""When is each subscription due? Pure functions of (config, feed state, now)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from planet.config import Config, Subscription
from planet.model import FeedState


def next_fetch(config: Config, state: FeedState | None) -> datetime | None:
    """The earliest time the feed may be fetched again; ``None`` means at once."""
    if state is None or state.last_fetch is None:
        return None
    return state.last_fetch + timedelta(seconds=config.fetch_interval)


def due(config: Config, states: Mapping[str, FeedState], now: datetime) -> list[Subscription]:
    """The subscriptions to fetch at ``now``, never-fetched ones first."""
    ready = []
    for sub in config.subscriptions:
        when = next_fetch(config, states.get(sub.url))
        if when is None or when <= now:
            ready.append((when is not None, when or now, sub))
    ready.sort(key=lambda item: (item[0], item[1]))
    return [sub for _, _, sub in ready]


def urls(subscriptions: Iterable[Subscription]) -> list[str]:
    return [s.url for s in subscriptions]
