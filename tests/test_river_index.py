"""RiverIndex: the river in blocks behaves as one sorted list under every change the store
makes (issue 15: inserting into one 200,000-entry list cost the reactor ~3 s a cold cycle)."""

from __future__ import annotations

import gc
from datetime import timedelta
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from test_store import NOW, A, B, entry

from planet import river as river_module
from planet.model import Entry
from planet.river import RiverIndex, river_key

C = "http://c.example/feed"

# (operation, feed, id, minutes): adds, removes, edits in place, expiries, older batches.
_OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "add", "remove", "replace", "drop", "older"]),
        st.sampled_from([A, B, C]),
        st.integers(0, 40),
        st.integers(0, 60),
    ),
    max_size=80,
)


def made(feed: str, n: int, minutes: int, **kw: Any) -> Entry:
    when = NOW - timedelta(minutes=minutes)
    return entry(feed, n, 1, **{"published": when, "updated": when, **kw})


def check(index: RiverIndex, want: list[Entry]) -> None:
    want.sort(key=river_key)
    assert list(index) == want
    assert all(a is b for a, b in zip(index, want, strict=True))
    assert len(index) == len(want)
    assert index.newest_first() == tuple(reversed(want))
    assert index.oldest() is (want[0] if want else None)
    # Every block's last key is its last entry's: finding a block depends on it.
    assert index._lasts == [river_key(block[-1]) for block in index._blocks]
    assert all(index._blocks)
    # Blocks hold only entries: out of the collector's lists, as the store's containers.
    assert [len(b) for b in index._blocks if gc.is_tracked(b)] == []


@settings(max_examples=400, deadline=None)
@given(ops=_OPS, block=st.sampled_from([1, 2, 3, 1024]), start=st.integers(0, 20))
def test_blocks_behave_as_one_sorted_list(ops: list[Any], block: int, start: int) -> None:
    with mock.patch.object(river_module, "RIVER_BLOCK", block):
        want = sorted((made(A, 100 + i, i * 7) for i in range(start)), key=river_key)
        index = RiverIndex(want)
        check(index, want)
        for op, feed, n, minutes in ops:
            held = {(e.feed_url, e.id): e for e in want}
            key = (feed, f"{feed}#{n}")
            if op == "add" and key not in held:
                new = made(feed, n, minutes)
                index.add(new)
                want.append(new)
            elif op == "remove" and key in held:
                index.remove(held[key])
                want.remove(held[key])
            elif op == "replace" and key in held:
                old = held[key]
                new = made(feed, n, 0, published=old.published, title="edited")
                index.replace(old, new)
                want[want.index(old)] = new
            elif op == "drop":
                cutoff = NOW - timedelta(minutes=minutes * 3)
                gone = index.drop_older(cutoff)
                assert gone == sorted((e for e in want if e.published < cutoff), key=river_key)
                want = [e for e in want if e.published >= cutoff]
            elif op == "older":
                oldest = min((river_key(e) for e in want), default=None)
                batch = [
                    e
                    for e in (made(feed, 1000 + n + i, 200 + minutes + i) for i in range(n % 5))
                    if (oldest is None or river_key(e) < oldest) and (e.feed_url, e.id) not in held
                ]
                index.add_older(sorted(batch, key=river_key))
                want.extend(batch)
            check(index, want)


def test_a_block_splits_past_twice_its_size() -> None:
    with mock.patch.object(river_module, "RIVER_BLOCK", 4):
        index = RiverIndex()
        entries = [made(A, n, n) for n in range(9)]
        for e in entries:
            index.add(e)
        assert [len(b) for b in index._blocks] == [4, 5]
        check(index, entries)


def test_an_entry_not_held_is_refused() -> None:
    index = RiverIndex([made(A, 1, 1)])
    try:
        index.remove(made(B, 1, 1))
    except ValueError:
        pass
    else:
        raise AssertionError("removed an entry it did not hold")
