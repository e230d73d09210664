"""The daemon as production wires it, on a Clock, for unit tests.

:func:`planet.service.build_service` builds every piece here, exactly as ``twistd planet``
does; the rig swaps only what a unit test must: a :class:`~twisted.internet.task.Clock` for
the reactor, a :class:`~treq.testing.StubTreq` over an in-memory resource for the network,
an inline parser and ``run_in_thread``, and no web listener. It starts the fetch loop only
(the snapshot, heap and systemd children are tested on their own).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import IResource

from planet.config import Config
from planet.model import ParsedFeed
from planet.service import PlanetService, build_service
from planet.testing import inline_parser, run_inline

#: ``run_in_thread`` that runs on the calling thread (the tests' name for it).
inline = run_inline


class Rig:
    """A :class:`PlanetService` from ``build_service``, on a Clock and StubTreq."""

    def __init__(
        self,
        test: SynchronousTestCase,
        config: Config,
        resource: IResource,
        *,
        now: datetime | None = None,
        clock: Clock | None = None,
        parser: Callable[..., Deferred[ParsedFeed]] = inline_parser,
        rng: random.Random | None = None,
    ) -> None:
        self.test = test
        if clock is None:
            clock = Clock()
            clock.advance(now.timestamp() if now is not None else 0)
        self.clock = clock
        self.stub = StubTreq(resource)
        self.service: PlanetService = build_service(
            config,
            None,
            self.clock,
            parser=parser,
            client=self.stub,
            run_in_thread=inline,
            rng=rng,
        )
        self.store = self.service.store
        self.aggregator = self.service.aggregator
        self.ingester = self.aggregator.ingester
        self.subscriptions = self.service.subscriptions
        self.fetcher = self.service.fetcher
        self.web = self.service.web

    @property
    def config(self) -> Config:
        """The effective config (reading lists included)."""
        return self.subscriptions.effective

    @property
    def tick(self) -> float:
        return self.aggregator.tick_interval

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.settle()

    def settle(self) -> None:
        """Pump the stub connections and run what is due now, until neither does anything:
        a cycle's updates start over several turns of the reactor (``Launch``)."""
        while True:
            self.stub.flush()
            now = self.clock.seconds()
            if not any(c.getTime() <= now for c in self.clock.getDelayedCalls()):
                return
            self.clock.advance(0)

    def start(self) -> None:
        self.aggregator.startService()
        self.test.addCleanup(self.stop)

    def stop(self) -> None:
        if self.aggregator.running:
            stopped = self.aggregator.stopService()
            # Running fetches get a grace period at stop before they are abandoned.
            self.clock.advance(self.aggregator.grace)
            self.stub.flush()
            self.test.successResultOf(stopped)
