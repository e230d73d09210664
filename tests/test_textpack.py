"""Entry HTML held packed in memory (planet.textpack): the text comes back exactly, sizes
are known without unpacking, the snapshot still holds the text, and the store holds less."""

from __future__ import annotations

import gc
import json
import pickle
import random
import sys
import threading
import tracemalloc
from typing import Any

from attrs import evolve
from test_store import NOW, A
from test_store import entry as store_entry
from twisted.trial.unittest import SynchronousTestCase

from planet import snapshotcodec
from planet.model import Entry, FetchResult, ParsedFeed
from planet.snapshotcodec import decode_all, decode_staged, encode
from planet.store import Store
from planet.testing import record_fetch
from planet.textpack import PACK_MIN, pack, text_memory, unpack, utf8_size

_WORDS = (
    "the of and to in is that for it as with was on be by this are or from at an but not "
    "feed river planet reactor deferred callback thread process worker parser entry snapshot "
    "store render template cache header request response server client socket protocol "
    "memory garbage collector interpreter module package release version patch build test "
    "garden river mountain coffee bicycle autumn library museum concert weekend morning"
).split()


def blog_html(seed: int, paragraphs: int = 12) -> str:
    """Blog-like sanitized HTML of ~5 KB: paragraphs of words, inline markup, links."""
    rnd = random.Random(seed)
    parts = []
    for p in range(paragraphs):
        words = [rnd.choice(_WORDS) for _ in range(rnd.randint(40, 70))]
        words[rnd.randrange(len(words))] = f"<em>{rnd.choice(_WORDS)}</em>"
        words[rnd.randrange(len(words))] = (
            f'<a href="https://blog{seed}.example/{p}/{rnd.choice(_WORDS)}">'
            f"{rnd.choice(_WORDS)}</a>"
        )
        parts.append("<p>" + " ".join(words).capitalize() + ".</p>")
    return "".join(parts)


TEXTS = {
    "ascii html": blog_html(1),
    "non-ascii": "<p>café Zürich 日本語 😀 Ελληνικά</p>" * 20,
    "lone surrogate (a hand-edited snapshot)": "<p>\ud800 left alone</p>" * 30,
    "control and separators": '<p>\x00 \u2028 \\ "quoted"</p>' * 40,
}


class PackTests(SynchronousTestCase):
    def test_long_text_is_packed_and_comes_back_exactly(self) -> None:
        for label, text in TEXTS.items():
            with self.subTest(label):
                packed = pack(text)
                self.assertIsInstance(packed, bytes)
                self.assertEqual(unpack(packed), text)
                self.assertEqual(utf8_size(packed), len(text.encode("utf-8", "surrogatepass")))
                self.assertEqual(utf8_size(packed), utf8_size(text))

    def test_memory_is_counted_as_the_text_unpacked(self) -> None:
        text = TEXTS["ascii html"]
        self.assertEqual(text_memory(pack(text)), sys.getsizeof(text))
        self.assertEqual(text_memory("short"), sys.getsizeof("short"))
        # However well it packs: a per-feed bound holds the same text either way.
        flat = "x" * 5_000_000
        self.assertLess(len(pack(flat)), 1000)
        self.assertEqual(text_memory(pack(flat)), sys.getsizeof(flat))

    def test_short_text_and_what_is_no_text_are_kept_as_they_are(self) -> None:
        short = "y" * (PACK_MIN - 1)
        for value in ("", short, None, 5):
            with self.subTest(repr(value)[:20]):
                self.assertIs(pack(value), value)  # type: ignore[arg-type]
                self.assertIs(unpack(value), value)  # type: ignore[arg-type]
        self.assertIsInstance(pack("y" * PACK_MIN), bytes)

    def test_the_same_text_packs_to_the_same_bytes_in_any_thread(self) -> None:
        text = TEXTS["ascii html"]
        here = pack(text)
        there: list[Any] = []
        thread = threading.Thread(target=lambda: there.append(pack(text)))
        thread.start()
        thread.join()
        self.assertEqual(there, [here])

    def test_threads_pack_and_unpack_at_once(self) -> None:
        texts = [blog_html(seed) for seed in range(8)]
        wrong: list[int] = []

        def work(n: int) -> None:
            for _ in range(200):
                text = texts[n]
                if unpack(pack(text)) != text:
                    wrong.append(n)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(wrong, [])


def entry(n: int, content: str, feed_url: str = A) -> Entry:
    return store_entry(feed_url, n, 1 + n % 28, content=content)


class EntryTests(SynchronousTestCase):
    def test_an_entry_holds_its_html_packed_and_gives_it_back_as_text(self) -> None:
        html = TEXTS["ascii html"]
        e = entry(1, html)
        self.assertIsInstance(e.packed_content, bytes)
        self.assertEqual(e.content, html)
        self.assertEqual(e.content_bytes, len(html))
        # The farm-like HTML packs well over twice: under half the memory of the str.
        self.assertLess(sys.getsizeof(e.packed_content), sys.getsizeof(html) / 2)

    def test_mending_a_snapshots_records_does_not_unpack_content(self) -> None:
        from collections import Counter

        from planet import model
        from planet.records import clean_entry

        e = entry(1, TEXTS["ascii html"])

        def refuse(value: object) -> str:
            raise AssertionError("content unpacked to check its type")

        self.patch(model, "unpack", refuse)
        problems: Counter[str] = Counter()
        self.assertIs(clean_entry(e, problems), e)
        self.assertEqual(problems, Counter())

    def test_pickled_to_and_from_a_worker_it_stays_packed(self) -> None:
        html = TEXTS["ascii html"]
        e = entry(1, html)
        data = pickle.dumps(e, pickle.HIGHEST_PROTOCOL)
        self.assertLess(len(data), len(html) / 2)
        back = pickle.loads(data)
        self.assertEqual(back, e)
        self.assertEqual(back.content, html)

    def test_evolve_keeps_the_packed_bytes_or_packs_new_content(self) -> None:
        e = entry(1, TEXTS["ascii html"])
        retitled = evolve(e, title="Other")
        self.assertIs(retitled.packed_content, e.packed_content)
        self.assertTrue(retitled.same_content(evolve(retitled)))
        edited = evolve(e, content=TEXTS["non-ascii"])
        self.assertEqual(edited.content, TEXTS["non-ascii"])
        self.assertIsInstance(edited.packed_content, bytes)
        self.assertFalse(edited.same_content(e))
        self.assertTrue(entry(1, TEXTS["ascii html"]).same_content(e))


def _blog_feed(feed: int, entries: int) -> tuple[str, ParsedFeed]:
    url = f"http://blog{feed}.example/feed"
    items = tuple(entry(n, blog_html(feed * 100 + n), url) for n in range(entries))
    return url, ParsedFeed(title=f"Blog {feed}", link=None, entries=items)


class StoreMemoryTests(SynchronousTestCase):
    def test_the_store_holds_blog_html_in_well_under_its_size(self) -> None:
        """2000 entries of ~5 KB: held unpacked they took more than their text (1.0x plus
        the rest of each entry); packed, under 0.7x of it with everything else."""
        gc.collect()
        tracemalloc.start()
        try:
            start, _ = tracemalloc.get_traced_memory()
            store = Store()
            text = 0
            for n in range(100):
                url, parsed = _blog_feed(n, 20)
                text += sum(sys.getsizeof(e.content) for e in parsed.entries)
                record_fetch(store, url, FetchResult(url, url, 200, body=b"x"), parsed, NOW)
                del parsed
            gc.collect()
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertEqual(store.entry_count(), 2000)
        ratio = (held - start) / text
        print(f"store memory / content: {ratio:.2f} ({(held - start) / 1e6:.1f} MB)")
        self.assertLess(ratio, 0.7)


class SnapshotTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.entries = [entry(n, blog_html(n) if n % 2 else f"<p>short {n}</p>") for n in range(7)]
        self.entries.append(entry(99, TEXTS["non-ascii"]))

    def test_the_snapshot_holds_the_text(self) -> None:
        doc = json.loads(encode(self.entries, [], NOW))
        self.assertEqual([r["content"] for r in doc["entries"]], [e.content for e in self.entries])
        self.assertNotIn("packed_content", doc["entries"][0])

    def test_read_back_on_every_path_the_entries_are_packed_again(self) -> None:
        data = encode(self.entries, [], NOW)

        def check(got: list[Entry]) -> None:
            self.assertEqual(got, self.entries)
            for e in got:
                held = bytes if len(e.content) >= PACK_MIN else str
                self.assertIsInstance(e.packed_content, held)

        with self.subTest("fast"):
            self.assertIsNotNone(snapshotcodec._TYPED)
            check(decode_all(data)[0])
        with self.subTest("generic"):
            check(snapshotcodec._decode_generic(data).entries)
        with self.subTest("staged"):
            many = self.entries * 50  # more than one line of CHUNK entries
            first, lines = decode_staged(encode(many, [], NOW), 1)
            assert lines is not None
            got = list(first.entries)
            while not lines.done:
                got.extend(lines.read())
            self.assertEqual(got, many)
            self.assertIsInstance(got[-1].packed_content, bytes)
