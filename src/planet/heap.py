"""Keep the daemon's heap in check: no collector stalls, freed memory handed back, the
reactor thread never long without the GIL.

A collection stops the reactor while it examines every object it tracks: with 200,000
entries that was ~200 ms. Two things keep the tracked set small:

- Entries and feed states are taken out of the collector's lists as the store keeps them
  (:func:`planet.memory.untrack`): every field of theirs is a string, a date, a number or
  ``None``, so they can never be part of a reference cycle, which is all the collector looks
  for. CPython does the same for tuples and dicts of such values.
- What is alive once start-up is done (modules, classes, functions, the services, the
  config) is collected once, then frozen (:func:`gc.freeze`): it lives as long as the
  daemon, and ~80,000 objects of it cost ~35 ms per pass.

After each fetch cycle :meth:`HeapService.settle` collects everything else, the garbage
cycles the cycle left (Deferreds, failures, connections), so CPython's own full passes,
which it starts when the long-lived objects grew by a quarter, find little to do. Frozen
objects are still freed when their last reference goes; a cycle among them would wait for
the stop, and start-up leaves none that dies.

The service also shortens the interpreter's switch interval (5 ms by default) to 1 ms
while it runs. A render or snapshot thread running Python keeps the GIL until the
reactor thread has waited a whole interval for it, and the reactor thread gives the GIL up
at every system call (poll, recv, send): at 5 ms, serving one request while ``/feeds``
rendered took tens of ms (benchmarks/README.md, "At 10,000 feeds").

:class:`HeapTrimmer` hands the memory malloc keeps after frees back to the system every
second (see :mod:`planet.memory`).
"""

from __future__ import annotations

import gc
import sys
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
    """Freezes what start-up made, and collects the garbage of every fetch cycle."""

    clock: IReactorTime
    collector: Any = gc
    #: Collections after a cycle.
    collections: int = 0
    #: ``sys``: its switch interval is set to ``switch_interval`` seconds while running.
    interpreter: Any = sys
    switch_interval: float = 0.001
    _log: Logger = field(factory=Logger)
    _interval_before: float | None = None

    def startService(self) -> None:
        super().startService()
        self._interval_before = self.interpreter.getswitchinterval()
        self.interpreter.setswitchinterval(self.switch_interval)
        # Start-up's garbage (the snapshot's decoding) first, so none of it is kept frozen.
        self.collector.collect()
        self.collector.freeze()

    def stopService(self) -> None:
        super().stopService()
        self.collector.unfreeze()
        if self._interval_before is not None:
            self.interpreter.setswitchinterval(self._interval_before)

    def settle(self) -> None:
        """A fetch cycle ended: collect the garbage it left."""
        if not self.running:
            return
        started = time.perf_counter()
        found = self.collector.collect()
        self.collections += 1
        self._log.debug(
            "garbage collection: {found} objects freed in {ms:.1f} ms",
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
