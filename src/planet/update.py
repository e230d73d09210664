"""A feed's next state after one fetch: the one place that decides it, as a pure function.

Everything a fetch (or, later, a pushed body) changes about a subscription is decided here
from ``(config, the state before, the fetch result, the parse, now, rng)``: errors and
their count, 410 Gone, adopted moves, validators, the next fetch time, Retry-After waits
and which entries are offered to the store. :class:`planet.store.Store` only applies the
result and keeps its indexes; nothing here touches the store, the network or a clock.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from attrs import evolve, frozen

from planet import schedule
from planet.config import Config
from planet.model import Entry, FeedState, FetchResult, ParsedFeed

__all__ = ["FeedUpdate", "update_feed"]


@frozen
class FeedUpdate:
    """What one fetch makes of a feed: its next state and the entries to merge."""

    state: FeedState
    #: Entries to merge into the feed's (None: a 304, an unchanged body or a failure).
    entries: tuple[Entry, ...] | None = None
    #: The feed's final URL or own id changed (or it never succeeded before): it may have
    #: become the same feed as another subscription.
    identity_changed: bool = False


def update_feed(
    config: Config,
    before: FeedState,
    result: FetchResult,
    parsed: ParsedFeed | None,
    now: datetime,
    rng: random.Random,
) -> FeedUpdate:
    """The feed's state after ``result`` (and ``parsed``: None when nothing was parsed)."""
    changes: dict[str, Any] = dict(
        last_fetch=now,
        http_status=result.status,
        final_url=result.final_url,
        waiting_until=None,
    )
    error = result.error or (parsed.error if parsed is not None else None)
    if error is not None:
        if result.status == 410:
            changes["gone_since"] = before.gone_since or now
        changes.update(error=error, consecutive_errors=before.consecutive_errors + 1)
        if result.error is None and result.body_hash is not None:
            # The body arrived but could not be parsed: remember it, so that the same
            # bytes are not parsed again (a parse that timed out would time out again).
            changes["body_hash"] = result.body_hash
        return _scheduled(config, evolve(before, **changes), before, result, parsed, now, rng)
    changes.update(_moves(before, result))
    # Validators are refreshed on a 304 too: servers rotate them.
    changes.update(
        last_success=now,
        error=None,
        consecutive_errors=0,
        gone_since=None,
        etag=result.etag or (before.etag if result.not_modified else None),
        last_modified=result.last_modified
        or (before.last_modified if result.not_modified else None),
        body_hash=result.body_hash or before.body_hash,
    )
    entries = None
    if parsed is not None:
        changes.update(
            title=parsed.title or before.title,
            link=parsed.link or before.link,
            feed_id=parsed.feed_id,
        )
        entries = _recent(config, parsed.entries, now)
    update = _scheduled(config, evolve(before, **changes), before, result, parsed, now, rng)
    return evolve(update, entries=entries)


def _scheduled(
    config: Config,
    state: FeedState,
    before: FeedState,
    result: FetchResult,
    parsed: ParsedFeed | None,
    now: datetime,
    rng: random.Random,
) -> FeedUpdate:
    """``state`` with its next fetch time, and whether its identity changed."""
    first_success = before.last_success is None and not state.failing
    next_at, waiting = schedule.next_fetch(config, state, result, parsed, now, rng, first_success)
    identity_changed = not state.failing and (
        (state.final_url, state.feed_id) != (before.final_url, before.feed_id)
        or before.last_success is None
    )
    return FeedUpdate(
        state=evolve(state, next_fetch=next_at, waiting_until=waiting),
        identity_changed=identity_changed,
    )


def _recent(config: Config, entries: tuple[Entry, ...], now: datetime) -> tuple[Entry, ...]:
    """The entries inside ``max_entry_age_days`` (all of them when it is 0)."""
    if not config.max_entry_age_days:
        return entries
    cutoff = now - timedelta(days=config.max_entry_age_days)
    return tuple(e for e in entries if e.published >= cutoff)


def _moves(state: FeedState, result: FetchResult) -> dict[str, Any]:
    """The state changes adopting a permanent move: at once for http->https on the same
    host, else when seen twice. Only a chain of 301/308 hops counts; a temporary redirect
    anywhere resets the count."""
    hops = result.redirects
    if not hops or any(code not in (301, 308) for code, _ in hops):
        return {"pending_move": None, "pending_count": 0}
    target = result.final_url
    count = state.pending_count + 1 if state.pending_move == target else 1
    if _https_upgrade(result.url, target) or count >= 2:
        return {
            "current_url": None if target == state.url else target,
            "pending_move": None,
            "pending_count": 0,
        }
    return {"pending_move": target, "pending_count": count}


def _https_upgrade(origin: str, target: str) -> bool:
    try:
        before, after = urlsplit(origin), urlsplit(target)
        return (
            before.scheme == "http"
            and after.scheme == "https"
            and (before.hostname or "") == (after.hostname or "")
        )
    except ValueError:
        return False
