"""The heap policy: start-up frozen once, every cycle's garbage collected, values untracked."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from planet.heap import HeapService


class RecordingCollector:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")

    def collect(self) -> int:
        self.calls.append("collect")
        return 0


class FakeInterpreter:
    def __init__(self) -> None:
        self.interval = 0.005

    def getswitchinterval(self) -> float:
        return self.interval

    def setswitchinterval(self, interval: float) -> None:
        self.interval = interval


class HeapServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.gc = RecordingCollector()
        self.interpreter = FakeInterpreter()
        self.heap = HeapService(clock=self.clock, collector=self.gc, interpreter=self.interpreter)

    def test_the_switch_interval_is_short_while_running(self) -> None:
        # The reactor thread waits up to one interval for the GIL after each system call
        # while a render thread runs Python.
        self.heap.startService()
        self.assertEqual(self.interpreter.interval, 0.001)
        self.heap.stopService()
        self.assertEqual(self.interpreter.interval, 0.005)

    def test_start_collects_then_freezes(self) -> None:
        self.heap.startService()
        # Collected first: start-up's garbage is not kept frozen for the daemon's life.
        self.assertEqual(self.gc.calls, ["collect", "freeze"])

    def test_each_cycle_collects_and_never_unfreezes(self) -> None:
        self.heap.startService()
        for _ in range(100):
            self.clock.advance(3600)
            self.heap.settle()
        # Unfreezing would have every pass examine start-up's ~80,000 objects again.
        self.assertEqual(self.gc.calls, ["collect", "freeze"] + ["collect"] * 100)
        self.assertEqual(self.heap.collections, 100)

    def test_stop_unfreezes_and_settle_after_stop_does_nothing(self) -> None:
        self.heap.startService()
        self.heap.stopService()
        self.assertEqual(self.gc.calls, ["collect", "freeze", "unfreeze"])
        self.heap.settle()
        self.assertEqual(self.gc.calls, ["collect", "freeze", "unfreeze"])


class Node:
    other: Any = None


class RealCollectorTests(SynchronousTestCase):
    """With the interpreter's own collector."""

    def test_start_up_garbage_is_freed_not_frozen(self) -> None:
        heap = HeapService(clock=Clock())
        a, b = Node(), Node()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        del a, b
        heap.startService()
        self.addCleanup(gc.unfreeze)
        self.assertIsNone(alive())
        self.assertGreater(gc.get_freeze_count(), 0)
        heap.stopService()
        self.assertEqual(gc.get_freeze_count(), 0)

    def test_garbage_cycles_made_after_start_are_freed_after_each_cycle(self) -> None:
        clock = Clock()
        heap = HeapService(clock=clock)
        heap.startService()
        self.addCleanup(gc.unfreeze)
        frozen = gc.get_freeze_count()
        for _ in range(2):
            a, b = Node(), Node()
            a.other, b.other = b, a
            alive = weakref.ref(a)
            del a, b
            clock.advance(60)
            heap.settle()
            self.assertIsNone(alive())
            # Nothing made after start-up is frozen (frozen objects may be freed), so every
            # settle can free it.
            self.assertLessEqual(gc.get_freeze_count(), frozen)
        heap.stopService()
