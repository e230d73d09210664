"""When is each subscription due? Pure functions of (config, feed state, fetch outcome, now).

The policy, in the order it applies:

- 410 Gone: never again.
- 429/503 with ``Retry-After`` (seconds or HTTP-date): not before then, capped at 7 days.
- Other errors: exponential backoff from ``fetch_interval``, doubling per consecutive error,
  capped at ``max_backoff``, with +/-10 % jitter so failing feeds do not retry in step.
- Success: ``fetch_interval``, or longer when the server or the feed asks (``Cache-Control:
  max-age``, ``Expires``, RSS ``ttl``, ``sy:updatePeriod``; capped at 24 hours). The first
  success adds a stable per-feed offset within the interval, so feeds fetched together at
  start-up spread out over the interval from then on; a small positive jitter keeps them
  from drifting back into step.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from planet.config import Config, Subscription
from planet.model import FeedState, FetchResult, ParsedFeed

MAX_RETRY_AFTER = 7 * 24 * 3600.0
MAX_FRESHNESS = 24 * 3600.0
BACKOFF_JITTER = 0.10
#: Share of the interval added as (positive) jitter to a successful fetch's next time.
SPREAD_JITTER = 0.05


def due(
    config: Config, states: Mapping[str, FeedState], now: datetime, refresh: bool = False
) -> list[Subscription]:
    """The subscriptions to fetch at ``now``, never-fetched ones first.

    With ``refresh`` (the operator's "fetch everything now") every :func:`refreshable` feed
    is due as well, whatever its time.
    """
    ready = []
    for sub in config.subscriptions:
        state = states.get(sub.url)
        if state is None:
            ready.append((0, now, sub))
            continue
        if state.gone_since is not None or state.duplicate_of is not None:
            continue
        when = state.next_fetch
        if when is None or when <= now:
            ready.append((1, when or now, sub))
        elif refresh and refreshable(state, now):
            ready.append((1, now, sub))
    ready.sort(key=lambda item: (item[0], item[1]))
    return [sub for _, _, sub in ready]


def refreshable(state: FeedState, now: datetime) -> bool:
    """Whether a refresh may fetch the feed early: not gone, not a duplicate, not backing
    off after errors, not asked by its server to wait (asking early would be impolite)."""
    return (
        state.gone_since is None
        and state.duplicate_of is None
        and not state.failing
        and (state.waiting_until is None or state.waiting_until <= now)
    )


def next_fetch(
    config: Config,
    state: FeedState,
    result: FetchResult,
    parsed: ParsedFeed | None,
    now: datetime,
    rng: random.Random,
    first_success: bool = False,
) -> tuple[datetime | None, datetime | None]:
    """``(next_fetch, waiting_until)`` after ``result``; ``next_fetch`` None means never."""
    interval = config.fetch_interval
    if result.status == 410:
        return None, None
    if result.status in (429, 503):
        delay = retry_after_seconds(result.retry_after, now)
        if delay is not None:
            until = now + timedelta(seconds=min(delay, MAX_RETRY_AFTER))
            return max(until, now + timedelta(seconds=interval)), until
    if state.failing:
        return now + timedelta(seconds=backoff_seconds(config, state.consecutive_errors, rng)), None
    wait = interval
    hint = freshness_seconds(result, parsed.refresh_hint if parsed is not None else None)
    if hint is not None:
        wait = max(wait, min(hint, MAX_FRESHNESS))
    if first_success:
        wait += stable_offset(state.url, interval)
    wait += rng.uniform(0, SPREAD_JITTER * interval)
    return now + timedelta(seconds=wait), None


def backoff_seconds(config: Config, consecutive_errors: int, rng: random.Random) -> float:
    """``fetch_interval`` doubled per consecutive error, capped, with +/-10 % jitter."""
    exponent = max(0, consecutive_errors - 1)
    # min() before the power: 2**1000 would overflow a float.
    base = min(config.fetch_interval * 2 ** min(exponent, 64), config.max_backoff)
    return base * rng.uniform(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER)


def stable_offset(url: str, interval: float) -> float:
    """A per-feed offset in ``[0, interval)`` that is the same on every run."""
    digest = hashlib.sha256(url.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * interval


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    seconds = _delta_seconds(value)
    if seconds is not None:
        return seconds
    when = _http_date(value)
    if when is None:
        return None
    return max(0.0, (when - now).total_seconds())


def freshness_seconds(result: FetchResult, feed_hint: float | None) -> float | None:
    """How long the response says it stays fresh: max of max-age, Expires and the feed's own."""
    hints = []
    directives = _cache_directives(result.cache_control)
    if "no-cache" not in directives and "no-store" not in directives:
        max_age = _delta_seconds(directives.get("max-age"))
        if max_age is not None:
            hints.append(max_age)
        elif result.expires:
            expires = _http_date(result.expires)
            date = _http_date(result.date) if result.date else None
            if expires is not None and date is not None:
                hints.append(max(0.0, (expires - date).total_seconds()))
    if feed_hint is not None and feed_hint > 0:
        hints.append(feed_hint)
    return max(hints) if hints else None


def _delta_seconds(value: str | None) -> float | None:
    """``delta-seconds`` (RFC 9111): ASCII digits only, else None, as if the header were absent.

    ``str.isdigit`` is true of "²", "٣" and "５" as well: ``float()`` refuses the first (and the
    exception left the feed with no next fetch, so it was fetched every tick) and reads the
    others as numbers no HTTP header means. (A huge value is inf: the caps apply.)
    """
    if value is None or not (value.isascii() and value.isdigit()):
        return None
    return float(value)


def _cache_directives(value: str | None) -> dict[str, str | None]:
    directives: dict[str, str | None] = {}
    for part in (value or "").split(","):
        name, _, arg = part.strip().partition("=")
        if name:
            directives[name.lower()] = arg.strip().strip('"') if arg else None
    return directives


def _http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return when


def urls(subscriptions: Iterable[Subscription]) -> list[str]:
    return [s.url for s in subscriptions]
