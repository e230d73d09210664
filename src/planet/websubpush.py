"""WebSub pushes taken in: signature checked, rate-limited and queued per subscription,
then parsed and stored the way a fetched body is (:meth:`planet.ingest.Ingester.take`).

A push is answered as soon as it is queued: the Recommendation (section 7) asks subscribers
to answer "as quickly as possible", the answer meaning receipt, not processing. The store
lives in memory, so a queued body is as safe as a stored entry; the queues are drained before
the snapshot at shutdown (:meth:`PushIntake.drain`), and bounded in count and bytes, beyond
which the hub is answered 429 and retries.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Container

from attrs import define, evolve, field
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from planet.config import Subscription
from planet.ingest import Ingester
from planet.metrics import Metrics
from planet.model import FetchResult, utc_from_timestamp
from planet.store import Store
from planet.websub import WebSubRecord, check_signature

__all__ = ["PushIntake"]

#: A bad signature is logged once per feed per this many seconds.
BAD_SIGNATURE_LOG_EVERY = 3600.0


@define
class _Bucket:
    """A token bucket: ``rate`` pushes a second, ``burst`` at once."""

    tokens: float
    at: float

    def take(self, now: float, rate: float, burst: float) -> bool:
        self.tokens = min(burst, self.tokens + (now - self.at) * rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@define(eq=False, repr=False)
class PushIntake:
    """Content distribution requests (section 7) of every subscription."""

    store: Store
    ingester: Ingester
    clock: IReactorTime
    metrics: Metrics
    log: Logger
    #: Pushes a second one subscription may make, and at once; more are answered 429.
    push_rate: float = 20.0
    push_burst: float = 40.0
    #: Push bodies waiting for their parse, per subscription, and their bytes in all; more
    #: are answered 429 (the hub retries later: a body answered 202 is kept).
    max_queued: int = 2
    max_queued_bytes: int = 64 * 1024 * 1024
    _buckets: dict[str, _Bucket] = field(factory=dict)
    _queues: dict[str, deque[tuple[bytes, str | None]]] = field(factory=dict)
    _queued_bytes: int = 0
    _busy: set[str] = field(factory=set)
    _bad_logged: dict[str, float] = field(factory=dict)
    _closed: bool = False
    _drained: list[Deferred[None]] = field(factory=list)

    def forget_all_but(self, ids: Container[str]) -> None:
        """Drop the rate limits of subscriptions that are gone."""
        for gone in [sub_id for sub_id in self._buckets if sub_id not in ids]:
            del self._buckets[gone]

    def take(
        self,
        record: WebSubRecord,
        sub: Subscription,
        signature: str | None,
        body: bytes,
        content_type: str | None,
    ) -> int:
        """The status to answer a push with: 202 once queued, and for a bad signature too,
        as section 8 says; 429 over the rate or the queue; 503 once shutting down."""
        sub_id = record.id
        if not check_signature(signature, record.secret, body):
            self.metrics.websub_push("bad-signature")
            self._bad_signature(record, signature)
            return 202
        if self._closed:
            return 503
        now = self.clock.seconds()
        bucket = self._buckets.setdefault(sub_id, _Bucket(self.push_burst, now))
        queue = self._queues.get(sub_id, ())
        if (
            len(queue) >= self.max_queued
            or self._queued_bytes + len(body) > self.max_queued_bytes
            or not bucket.take(now, self.push_rate, self.push_burst)
        ):
            self.metrics.websub_push("rate-limited")
            return 429
        self.metrics.websub_push("accepted")
        self.store.set_websub(evolve(record, last_push=utc_from_timestamp(now)))
        self._queues.setdefault(sub_id, deque()).append((body, content_type))
        self._queued_bytes += len(body)
        if sub_id not in self._busy:
            self._next(sub_id, sub)
        return 202

    @property
    def waiting(self) -> int:
        """Push bodies queued or being parsed."""
        return sum(len(q) for q in self._queues.values()) + len(self._busy)

    def drain(self) -> Deferred[None]:
        """Take no more pushes (503: the hub retries); fires once every body taken is
        stored. Shutdown waits for it before the snapshot is written."""
        self._closed = True
        if not self._busy:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._drained.append(d)
        return d

    def reopen(self) -> None:
        """Take pushes again (a service started again after a stop)."""
        self._closed = False

    def _next(self, sub_id: str, sub: Subscription) -> None:
        """Parse and apply the push bodies of one subscription in order, one at a time."""
        queue = self._queues.get(sub_id)
        if not queue:
            self._busy.discard(sub_id)
            self._queues.pop(sub_id, None)
            if not self._busy:
                drained, self._drained = self._drained, []
                for waiter in drained:
                    waiter.callback(None)
            return
        self._busy.add(sub_id)
        body, content_type = queue.popleft()
        self._queued_bytes -= len(body)
        state = self.store.state(sub.url)
        result = FetchResult(
            url=state.fetch_url,
            final_url=state.final_url or state.fetch_url,
            status=200,
            body=body,
            body_hash=hashlib.sha256(body).hexdigest(),
            content_type=content_type,
        )
        d = self.ingester.take(sub, result)
        d.addErrback(lambda f: self.log.failure("WebSub push of {url}", f, url=sub.url))

        def taken(_: object) -> None:
            self._next(sub_id, sub)

        d.addBoth(taken)

    def _bad_signature(self, record: WebSubRecord, signature: str | None) -> None:
        now = self.clock.seconds()
        last = self._bad_logged.get(record.feed_url)
        if last is not None and now - last < BAD_SIGNATURE_LOG_EVERY:
            return
        self._bad_logged[record.feed_url] = now
        self.log.warn(
            "{url}: WebSub push with {what} signature dropped (logged once an hour)",
            url=record.feed_url,
            what="a wrong" if signature else "no",
        )
