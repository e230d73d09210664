"""Keep the daemon's heap in check: no collector stalls, freed memory handed back.

A full collection examines every tracked object with the reactor stopped: with the
interpreter's own objects and 20k entries that is ~40 ms on a small VPS, with 100k entries
~100 ms, and CPython starts one whenever the long-lived objects grew by a quarter, which
a fetch cycle does several times. So what is alive after start-up and after each fetch cycle
is frozen (:func:`gc.freeze`): collections skip it, and only what is new is examined. Frozen
objects are still freed when their last reference goes; only cycles among them wait for the
next full pass, which unfreezes everything once every ``full_interval`` seconds, right after
a fetch cycle.

:class:`HeapTrimmer` hands the memory malloc keeps after frees back to the system every
second (see :mod:`planet.memory`).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from attrs import define, field
from twisted.application.internet import TimerService
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from planet import memory


@define(slots=False, repr=False)
class HeapService(Service):
    """Freezes the long-lived heap at start-up and after every fetch cycle."""

    clock: IReactorTime
    #: Seconds between the passes that examine every object (cycles among old objects).
    full_interval: float = 3600.0
    collector: Any = gc
    #: Collections after a cycle, and how many of them examined everything.
    collections: int = 0
    full_collections: int = 0
    _last_full: float = 0.0
    _log: Logger = field(factory=Logger)

    def startService(self) -> None:
        super().startService()
        # Start-up's objects (modules, the loaded snapshot) live as long as the daemon;
        # its garbage waits for the first full pass.
        self.collector.freeze()
        self._last_full = self.clock.seconds()

    def stopService(self) -> None:
        super().stopService()
        self.collector.unfreeze()

    def settle(self) -> None:
        """A fetch cycle ended: collect the garbage it left, freeze what lives on."""
        if not self.running:
            return
        full = self.clock.seconds() - self._last_full >= self.full_interval
        if full:
            self.collector.unfreeze()
            self._last_full = self.clock.seconds()
            self.full_collections += 1
        started = time.perf_counter()
        found = self.collector.collect()
        self.collector.freeze()
        self.collections += 1
        self._log.debug(
            "garbage collection{full}: {found} objects freed in {ms:.1f} ms",
            full=" of every object" if full else "",
            found=found,
            ms=(time.perf_counter() - started) * 1000,
        )


class HeapTrimmer(TimerService):
    """Calls :func:`planet.memory.trim` at start and every ``interval`` seconds while running."""

    def __init__(
        self, clock: IReactorTime, interval: float = 1.0, trim: Callable[[], bool] = memory.trim
    ) -> None:
        super().__init__(interval, self._trim_once)
        self.clock = clock
        self._trim = trim
        #: Trims done, and how many of them returned memory.
        self.trims = 0
        self.returned = 0

    def _trim_once(self) -> None:
        self.trims += 1
        if self._trim():
            self.returned += 1
