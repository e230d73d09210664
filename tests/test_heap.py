"""The heap policy: frozen after start-up and after each cycle, examined fully now and then."""

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


class HeapServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.gc = RecordingCollector()
        self.heap = HeapService(clock=self.clock, full_interval=3600, collector=self.gc)

    def test_start_freezes_without_a_collection(self) -> None:
        self.heap.startService()
        # A collection here would examine the whole loaded snapshot before the first page.
        self.assertEqual(self.gc.calls, ["freeze"])

    def test_each_cycle_collects_the_new_objects_then_freezes(self) -> None:
        self.heap.startService()
        self.clock.advance(60)
        self.heap.settle()
        self.assertEqual(self.gc.calls, ["freeze", "collect", "freeze"])
        self.assertEqual((self.heap.collections, self.heap.full_collections), (1, 0))

    def test_everything_is_examined_once_per_interval(self) -> None:
        self.heap.startService()
        for _ in range(59):
            self.clock.advance(60)
            self.heap.settle()
        self.assertNotIn("unfreeze", self.gc.calls)
        self.clock.advance(60)
        self.heap.settle()
        self.assertEqual(self.gc.calls[-3:], ["unfreeze", "collect", "freeze"])
        self.assertEqual(self.heap.full_collections, 1)
        self.clock.advance(60)
        self.heap.settle()
        self.assertEqual(self.gc.calls[-2:], ["collect", "freeze"])

    def test_stop_unfreezes_and_settle_after_stop_does_nothing(self) -> None:
        self.heap.startService()
        self.heap.stopService()
        self.assertEqual(self.gc.calls, ["freeze", "unfreeze"])
        self.heap.settle()
        self.assertEqual(self.gc.calls, ["freeze", "unfreeze"])


class Node:
    other: Any = None


class RealCollectorTests(SynchronousTestCase):
    """With the interpreter's own collector: nothing leaks for ever."""

    def test_a_cycle_among_frozen_objects_is_freed_by_the_full_pass(self) -> None:
        clock = Clock()
        heap = HeapService(clock=clock, full_interval=3600)
        a, b = Node(), Node()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        heap.startService()
        self.addCleanup(gc.unfreeze)
        self.assertGreater(gc.get_freeze_count(), 0)
        del a, b
        clock.advance(60)
        heap.settle()
        self.assertIsNotNone(alive())  # frozen: skipped by the cheap collection
        clock.advance(3600)
        heap.settle()
        self.assertIsNone(alive())
        heap.stopService()
        self.assertEqual(gc.get_freeze_count(), 0)

    def test_new_garbage_cycles_are_freed_after_each_cycle(self) -> None:
        clock = Clock()
        heap = HeapService(clock=clock, full_interval=3600)
        heap.startService()
        self.addCleanup(gc.unfreeze)
        a, b = Node(), Node()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        del a, b
        clock.advance(60)
        heap.settle()
        self.assertIsNone(alive())
        heap.stopService()
