"""WebSub, the subscriber's service: asks hubs for subscriptions, answers their
verifications of intent, and takes their pushes into the store.

A feed fetched with a hub (see :func:`planet.websub.discover`) is subscribed through the
:class:`~planet.fetch.Fetcher` (its host limits, timeout and network guard); the hub
verifies at ``GET /websub/<id>`` and pushes at ``POST /websub/<id>`` (:mod:`planet.web`
hands both here). A valid push goes the way a fetched body goes, from the parser on
(:meth:`planet.ingest.Ingester.take`). Records live in the store, so the snapshot keeps
them (secrets included) across restarts.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from attrs import define, evolve, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from planet import schedule
from planet.config import Config, Subscription
from planet.fetch import Fetcher
from planet.ingest import Ingester
from planet.metrics import Metrics
from planet.model import FetchResult, utc_from_timestamp
from planet.store import Store
from planet.websub import (
    Discovered,
    WebSubRecord,
    answer_hub,
    discover,
    live,
    new_record,
    renew_at,
    status_rows,
)
from planet.websubpush import PushIntake

__all__ = ["WebSubService", "opted_out"]

_NO = frozenset({"0", "no", "false", "off"})
#: Failed unsubscribe requests retried before the record is dropped all the same.
MAX_UNSUBSCRIBE_TRIES = 5


def opted_out(sub: Subscription) -> bool:
    """Whether a feed section says ``websub = no``."""
    return sub.options.get("websub", "").strip().lower() in _NO


@define(slots=False, eq=False, repr=False)
class WebSubService(Service):
    """Subscriptions with hubs: requested, verified, renewed, ended; pushes taken in."""

    config: Config
    store: Store
    fetcher: Fetcher
    ingester: Ingester
    clock: IReactorTime
    metrics: Metrics = field(factory=Metrics)
    rng: random.Random = field(factory=random.Random)
    #: How often leases, retries and removals are looked at (seconds).
    tick_interval: float = 30.0
    #: Seconds a request may wait for the hub's verification before it is retried.
    verify_timeout: float = 3600.0
    #: Seconds shutdown waits for the pushes taken to be stored (before the snapshot).
    drain_timeout: float = 30.0
    _loop: LoopingCall | None = None
    _in_flight: set[str] = field(factory=set)
    _log: Logger = field(factory=Logger)
    #: Takes the hubs' pushes in (rate limits, queues, signatures).
    pushes: PushIntake = field(init=False)
    _subs: tuple[Config, dict[str, Subscription]] | None = None

    def __attrs_post_init__(self) -> None:
        self.pushes = PushIntake(self.store, self.ingester, self.clock, self.metrics, self._log)

    # --- lifecycle -------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.pushes.reopen()
        self._loop = LoopingCall(self.tick)
        self._loop.clock = self.clock
        self._loop.start(self.tick_interval, now=True)

    def stopService(self) -> Deferred[None]:
        """Stop the ticks; fires once the pushes already answered are stored (at most
        ``drain_timeout`` seconds: the snapshot written next must hold them)."""
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        waiting = self.pushes.waiting
        drained = self.pushes.drain()
        if drained.called:
            return drained

        def late(result: object, timeout: float) -> None:
            self._log.warn(
                "{n} WebSub pushes still waiting for their parse after {t:g} s; not stored",
                n=self.pushes.waiting,
                t=timeout,
            )

        self._log.info("storing {n} WebSub pushes before stopping", n=waiting)
        return drained.addTimeout(self.drain_timeout, self.clock, onTimeoutCancel=late)

    def reconfigure(self, config: Config) -> None:
        """Follow ``config`` (a reload, a reading list): removed and opted-out feeds, or a
        new callback, are unsubscribed at once."""
        self.config = config
        if self.running:
            self.tick()

    @property
    def enabled(self) -> bool:
        return bool(self.config.websub_callback)

    def _wanted(self) -> dict[str, Subscription]:
        if not self.enabled:
            return {}
        return {s.url: s for s in self.config.subscriptions if not opted_out(s)}

    def _now(self) -> datetime:
        return utc_from_timestamp(self.clock.seconds())

    def tick(self) -> None:
        """Renew, retry, time out and end what is due."""
        now, wanted = self._now(), self._wanted()
        records = self.store.websub_records()
        self.pushes.forget_all_but(records)
        for record in list(records.values()):
            if record.id in self._in_flight:
                continue
            if record.pending == "unsubscribe":
                if _older(record.requested_at, now, self.verify_timeout):
                    self.store.drop_websub(record.id)  # the hub never confirmed: forget it
                elif record.next_attempt is not None and record.next_attempt <= now:
                    self._request(record, "unsubscribe")
                continue
            if record.feed_url not in wanted or not record.callback.startswith(
                _base(self.config.websub_callback)
            ):
                self._request(record, "unsubscribe")
            elif record.state in ("failing", "denied"):
                if record.next_attempt is None or record.next_attempt <= now:
                    self._request(record, "subscribe")
            elif record.pending == "subscribe":
                if _older(record.requested_at, now, self.verify_timeout):
                    self._failed(record, "subscribe", "the hub did not verify the request")
            elif record.state == "subscribed":
                due = renew_at(record)
                if due is not None and due <= now:
                    self._request(record, "subscribe")

    # --- discovery and requests -------------------------------------------------------

    def fetched(self, sub: Subscription, result: FetchResult) -> None:
        """A fetch of ``sub`` was applied: subscribe to the hub it names (or follow a new
        hub or topic)."""
        if result.error is not None or result.body is None or sub.url not in self._wanted():
            return
        found = discover(result.links, result.body, result.final_url)
        current = self.record_of(sub.url)
        if current is not None and found == Discovered(current.hub, current.topic):
            return
        if current is not None:
            self._request(current, "unsubscribe")  # the hub or the topic changed
        if found is None:
            return
        lease = int(self.config.websub_lease_seconds)
        record = new_record(sub.url, found, self.config.websub_callback, lease)
        self._log.info(
            "{url}: subscribing with WebSub hub {hub} (topic {topic})",
            url=sub.url,
            hub=found.hub,
            topic=found.topic,
        )
        self._request(record, "subscribe")

    def record_of(self, feed_url: str) -> WebSubRecord | None:
        """The subscription of ``feed_url`` (not one being ended), if any."""
        for record in self.store.websub_records().values():
            if record.feed_url == feed_url and record.pending != "unsubscribe":
                return record
        return None

    def _request(self, record: WebSubRecord, mode: str) -> Deferred[None]:
        """POST a (un)subscription request; pending before it is sent, as a hub may verify
        before it answers."""
        now = self._now()
        record = evolve(record, pending=mode, requested_at=now, next_attempt=None)
        self.store.set_websub(record)
        self._in_flight.add(record.id)
        form = {
            "hub.mode": mode,
            "hub.topic": record.topic,
            "hub.callback": record.callback,
        }
        if mode == "subscribe":
            form["hub.lease_seconds"] = str(record.lease_seconds)
            form["hub.secret"] = record.secret
        d = self.fetcher.post(record.hub, form)

        def answered(result: FetchResult) -> None:
            self._in_flight.discard(record.id)
            if result.error is not None:
                self._failed(record, mode, result.error)
            elif result.status != 202:
                self._log.info(
                    "{url}: hub {hub} answered {status} to {mode} (202 expected)",
                    url=record.feed_url,
                    hub=record.hub,
                    status=result.status,
                    mode=mode,
                )

        return d.addCallback(answered)

    def _failed(self, record: WebSubRecord, mode: str, reason: str) -> None:
        current = self.store.websub_records().get(record.id)
        if current is None or current.pending != mode:
            return  # verified (or ended) meanwhile
        errors = current.errors + 1
        wait = schedule.backoff_seconds(self.config, errors, self.rng)
        self._log.warn(
            "{url}: WebSub {mode} with {hub} failed ({reason}); retrying in {wait:.0f} s",
            url=record.feed_url,
            mode=mode,
            hub=record.hub,
            reason=reason,
            wait=wait,
        )
        if mode == "unsubscribe" and errors >= MAX_UNSUBSCRIBE_TRIES:
            self.store.drop_websub(record.id)
            return
        next_attempt = self._now() + timedelta(seconds=wait)
        state = current.state if mode == "unsubscribe" else "failing"
        if mode == "subscribe" and current.state == "subscribed" and not _lapsed(current, self):
            state = "subscribed"  # a failed renewal: the lease still runs
        self.store.set_websub(
            evolve(
                current,
                state=state,
                pending=mode if mode == "unsubscribe" else None,
                errors=errors,
                reason=reason,
                next_attempt=next_attempt,
            )
        )

    # --- the hub's requests -------------------------------------------------------------

    def verify(self, sub_id: str, args: Mapping[str, str]) -> tuple[int, bytes]:
        """A verification of intent (or a denial): the status and body to answer with."""
        record = self.store.websub_records().get(sub_id)
        if record is None:
            return 404, b"unknown subscription\n"
        answer = answer_hub(record, args, self._now(), self.config.max_backoff)
        if answer.record is not None:
            self.store.set_websub(answer.record)
        elif answer.code == 200:
            self.store.drop_websub(sub_id)  # an unsubscription verified
        if answer.news:
            self._log.info(
                "{url}: WebSub hub {hub}: {news}",
                url=record.feed_url,
                hub=record.hub,
                news=answer.news,
            )
        return answer.code, answer.body

    def push(
        self, sub_id: str, signature: str | None, body: bytes, content_type: str | None
    ) -> int:
        """A content distribution request; the status to answer with (see
        :meth:`planet.websubpush.PushIntake.take`)."""
        record = self.store.websub_records().get(sub_id)
        if record is None:
            return 404
        sub = self._by_url().get(record.feed_url)
        if sub is None:
            self.metrics.websub_push("gone")
            return 410
        return self.pushes.take(record, sub, signature, body, content_type)

    def _by_url(self) -> dict[str, Subscription]:
        """The subscriptions by feed URL, made once per config (a push is a lookup)."""
        if self._subs is None or self._subs[0] is not self.config:
            self._subs = (self.config, {s.url: s for s in self.config.subscriptions})
        return self._subs[1]

    # --- what is shown -----------------------------------------------------------------

    def interval_of(self, feed_url: str) -> float | None:
        """The poll interval of a feed with a verified subscription (a safety net)."""
        record = self.record_of(feed_url)
        if record is not None and record.state == "subscribed":
            return self.config.websub_poll_interval
        return None

    def rows(self) -> dict[str, dict[str, Any]]:
        """Per feed URL: ``websub``, ``websub_hub``, ``websub_expires``, ``last_push``."""
        return status_rows(self.store.websub_records().values())

    def by_state(self) -> Counter[str]:
        """Subscriptions by state (those being ended left out)."""
        return Counter(r.state for r in live(self.store.websub_records().values()))


def _base(callback: str) -> str:
    return callback if callback.endswith("/") else callback + "/"


def _older(when: datetime | None, now: datetime, seconds: float) -> bool:
    return when is None or (now - when).total_seconds() > seconds


def _lapsed(record: WebSubRecord, service: WebSubService) -> bool:
    return record.expires is None or record.expires <= service._now()
