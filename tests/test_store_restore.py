"""Store.restore: a snapshot read in steps (its newest entries loaded, then older batches
restored) ends as the whole snapshot loaded at once, its river index kept incrementally."""

from __future__ import annotations

import gc
import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from itertools import pairwise
from unittest import mock

import test_store
from feeds import at
from hypothesis import given, settings
from hypothesis import strategies as st
from test_store import NOW, A, B, entry, feed, ok, reference_items
from twisted.trial.unittest import SynchronousTestCase

from planet import river as river_module
from planet.model import Entry, FeedState
from planet.river import river_key, sort_river
from planet.store import Store
from planet.testing import record_fetch

C = "http://c.example/feed"
POST = "http://www.post.example/feed"  # fetched from the posts' host: its copies are shown
DROPPED = "entries of feeds no longer subscribed (dropped)"
STATES = (
    FeedState(url=A, link="http://post.example/"),  # its site is the posts' host (rank 1)
    FeedState(url=B),
    FeedState(url=C, link="http://site.example/"),
    FeedState(url=POST),
)
_LINKS = [
    None,
    "http://post.example/1",
    "http://POST.example/1/",
    "http://post.example/2",
    "https://post.example/2?utm_source=rss",
    "http://other.example/3",
]
_ENTRY = st.tuples(
    st.sampled_from([s.url for s in STATES]),
    st.integers(0, 12),  # id: the same ids in several feeds are different entries
    st.sampled_from(_LINKS),
    st.integers(1, 4),  # published day: ties across feeds
    st.integers(0, 2),  # first seen, hours after NOW: ties too
)


def make(specs: Sequence[tuple[str, int, str | None, int, int]]) -> list[Entry]:
    return [
        entry(url, 0, day, id=f"id{n}", link=link, first_seen=NOW + timedelta(hours=seen))
        for url, n, link, day, seen in specs
    ]


def split(river: Sequence[Entry], cuts: list[int]) -> list[list[Entry]]:
    bounds = [0, *sorted(cuts), len(river)]
    return [list(river[i:j]) for i, j in pairwise(bounds)]


def keys(entries: Sequence[Entry]) -> list[tuple[str, str]]:
    return [(e.feed_url, e.id) for e in entries]


def assert_sound(store: Store) -> None:
    """The river index is the store's entries sorted, each once, deduped as defined."""
    everything = [e for s in STATES for e in store.entries_of(s.url)]
    assert list(store._sorted) == sorted(everything, key=river_key)
    assert len(store._sorted) == len(everything)
    river = tuple(store.river())
    assert river == sort_river(everything)
    assert len(set(keys(river))) == len(river)
    view = store.river_view()
    assert list(view.items(True)) == reference_items(river, True, store.feed_states())


def assert_same(got: Store, want: Store) -> None:
    assert_sound(got)
    assert tuple(got.river()) == tuple(want.river())
    view, expected = got.river_view(), want.river_view()
    assert view.hidden == expected.hidden
    assert dict(view.also) == dict(expected.also)
    assert dict(got.feed_counts()) == dict(want.feed_counts())
    for s in STATES:
        assert set(got.entries_of(s.url)) == set(want.entries_of(s.url))


def loaded(
    entries: Sequence[Entry], per_feed: int = 0, states: Iterable[FeedState] = STATES
) -> Store:
    store = Store(max_entries_per_feed=per_feed)
    store.load(entries, states, typed=True)
    return store


def read_in_steps(
    first: Sequence[Entry], batches: Sequence[Sequence[Entry]], per_feed: int
) -> Store:
    store = loaded(first, per_feed)
    for batch in batches:
        problems = store.restore(batch, typed=True, by_bytes=False)
        assert not problems
    return store


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_ENTRY, max_size=30, unique_by=lambda s: (s[0], s[1])),
    st.lists(st.integers(0, 30), max_size=5),
    st.sampled_from([0, 3]),
    st.sampled_from([1024, 3, 1]),  # the real block size, and small ones: many blocks
    st.randoms(use_true_random=False),
)
def test_read_in_steps_is_loaded_at_once(
    specs: list[tuple[str, int, str | None, int, int]],
    cuts: list[int],
    per_feed: int,
    block: int,
    rnd: random.Random,
) -> None:
    entries = make(specs)
    river = sort_river(entries)
    first, *batches = split(river, [min(c, len(river)) for c in cuts])
    want = loaded(entries, per_feed)
    with mock.patch.object(river_module, "RIVER_BLOCK", block):
        # Newest batches first, as a snapshot is read: every batch is older than the river.
        assert_same(read_in_steps(first, batches, per_feed), want)
        # Any order (entries fetched meanwhile are newer): put in place one by one.
        rnd.shuffle(batches)
        assert_same(read_in_steps(first, batches, per_feed), want)
        assert_same(read_in_steps([], [first, *batches], per_feed), want)
        # Batches of entries from all over the river: each one partly older than the
        # river's oldest (put first at once), partly newer (put in place).
        scattered: list[list[Entry]] = [[] for _ in range(len(batches) + 1)]
        for e in river:
            scattered[rnd.randrange(len(scattered))].append(e)
        assert_same(read_in_steps(scattered[0], scattered[1:], per_feed), want)


class RestoreTests(SynchronousTestCase):
    def test_fetched_meanwhile_keeps_its_content_and_takes_the_loaded_dates(self) -> None:
        shared, moved = "http://post.example/1", "http://post.example/9"
        newest = [entry(A, 10, 20), entry(B, 1, 19, link=shared)]
        older = [entry(A, 5, 8, link=shared), entry(B, 2, 7)]
        oldest = [entry(A, 3, 5), entry(A, 4, 4, link=shared), entry(C, 1, 6)]
        store = loaded(newest)
        # A fetch between batches: a new entry, and one the snapshot's last batch also holds
        # (edited since: another link and content), first seen now.
        later = NOW + timedelta(days=1)
        # The feed's newest now: its count's date must move back with it.
        edited = entry(A, 4, 24, link=moved, content="<p>edited</p>", first_seen=later)
        fetched = [entry(A, 11, 23, first_seen=later), edited]
        record_fetch(store, A, ok(A), feed(*fetched), later)
        self.assertEqual(store.restore(older, typed=True, by_bytes=False), {})
        record_fetch(store, C, ok(C), feed(entry(C, 2, 21, link=shared, first_seen=later)), later)
        self.assertEqual(store.restore(oldest, typed=True, by_bytes=False), {})

        got = {e.id: e for e in store.entries_of(A)}[f"{A}#4"]
        self.assertEqual((got.content, got.link, got.updated), (edited.content, moved, day(24)))
        self.assertEqual((got.published, got.first_seen), (day(4), NOW))
        self.assertEqual(store.entry_count(), 9)
        self.assertEqual(store.feed_counts()[A], (5, day(23)))
        assert_sound(store)
        self.assertEqual(store.river()[-1], got)  # moved by its loaded dates
        # Indexed under the fetched link only: as if all of it were loaded at once.
        everything = [e for s in STATES for e in store.entries_of(s.url)]
        assert_same(store, loaded(everything, states=store.feed_states().values()))

    def test_entries_of_feeds_not_subscribed_are_dropped(self) -> None:
        store = Store()
        states = [FeedState(url=A), FeedState(url=C, duplicate_of=A)]
        store.load([entry(A, 1, 10)], states, typed=True)
        batch = [entry(B, 1, 9), entry(A, 2, 8), entry(C, 1, 7), entry(C, 2, 6, link=None)]
        problems = store.restore(batch, typed=True, by_bytes=False)
        self.assertEqual(problems, {DROPPED: 3})
        self.assertEqual(keys(store.river()), [(A, f"{A}#1"), (A, f"{A}#2")])
        self.assertEqual((store.entries_of(B), store.entries_of(C)), ((), ()))
        self.assertEqual(set(store.feed_counts()), {A})
        self.assertEqual(store.restore([entry(B, 3, 5)]), {DROPPED: 1})

    def test_a_feed_keeps_its_newest_within_its_bound(self) -> None:
        store = Store(max_entries_per_feed=3)
        store.load([entry(A, 9, 20), entry(B, 1, 18), entry(A, 8, 15)], STATES, typed=True)
        store.restore([entry(A, n, n) for n in range(1, 8)], typed=True, by_bytes=False)
        self.assertEqual(ids_of(store, A), [9, 8, 7])
        # A batch out of order: its newer entry pushes the oldest kept one out.
        store.restore([entry(A, 10, 16), entry(A, 11, 2)], typed=True, by_bytes=False)
        self.assertEqual(ids_of(store, A), [9, 10, 8])
        self.assertEqual(
            keys(store.river()), [(A, f"{A}#9"), (B, f"{B}#1"), (A, f"{A}#10"), (A, f"{A}#8")]
        )
        self.assertEqual(store.feed_counts()[A], (3, day(20)))
        assert_sound(store)

    def test_the_containers_stay_untracked(self) -> None:
        shared = "http://post.example/1"
        store = loaded([entry(A, 1, 20, link=shared), entry(B, 1, 19)])
        store.restore([entry(B, 2, 9, link=shared), entry(C, 1, 8)], typed=True, by_bytes=False)
        record_fetch(store, C, ok(C), feed(entry(C, 2, 21, link=shared)), NOW)
        store.restore([entry(C, 3, 22), entry(POST, 1, 2, link=shared)], typed=True)
        self.assertEqual(store.entry_count(), 7)
        # Read through snapshot_data, not river_view: making "Also in" puts new tuples in
        # `also`, which the collector then tracks again until the next change.
        entries = store.snapshot_data()[0]
        self.assertEqual([e.id for e in entries if gc.is_tracked(e)], [])
        test_store.UntrackedTests.assert_containers_untracked(self, store)  # type: ignore[arg-type]

    def test_many_entries_newer_than_the_river_are_sorted_in(self) -> None:
        """Many newer than the river's oldest: each put in place."""
        links = [None, "http://post.example/1", "http://post.example/2"]
        first = [entry(A, 0, 15), entry(B, 0, 5, link=links[1])]
        feeds = [s.url for s in STATES]
        batch = [
            entry(feeds[n % 4], n, 1 + n % 28, link=links[n % 3], first_seen=NOW + timedelta(n % 5))
            for n in range(1, 120)
        ]
        newer = [e for e in batch if river_key(e) > river_key(first[1])]
        self.assertGreater(len(newer), 64)
        self.assertLess(len(newer), len(batch))  # some older too: put first at once
        store = loaded(first)
        self.assertEqual(store.restore(batch, typed=True, by_bytes=False), {})
        assert_same(store, loaded(first + batch))


def day(n: int) -> datetime:
    return at(2026, 6, n)


def ids_of(store: Store, url: str) -> list[int]:
    return [int(e.id.rsplit("#", 1)[1]) for e in store.river() if e.feed_url == url]
