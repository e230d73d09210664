"""Entry HTML kept compressed in memory.

An entry's sanitized HTML is most of what a planet holds (about 5 KB an entry against a few
hundred bytes of everything else), is read only when a page or a feed is made or a snapshot
written, and compresses well: zstd at level 1 packs the benchmark farm's HTML 2.4 times at
~250 MB/s, in the parse workers, and unpacks it at ~600 MB/s. Short text is kept as it is.

A packed value is a zstd frame: it records the text's length in UTF-8 bytes, so sizes are
known without unpacking it. Text with lone surrogates (which a snapshot edited by hand may
hold) round-trips through ``surrogatepass``.
"""

from __future__ import annotations

import sys
import threading

import zstandard

#: Text shorter than this (in characters) is kept as a str: packing saves little on it.
PACK_MIN = 256
#: zstd's fastest level packs this HTML as tightly as level 3 does (2.45x against 2.46x).
LEVEL = 1
#: What ``sys.getsizeof`` adds to a compact ASCII str's length.
_STR_HEADER = sys.getsizeof("")


class _Codecs(threading.local):
    """A compressor and decompressor per thread (neither may be shared between threads)."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=LEVEL, write_content_size=True)
        self.decompressor = zstandard.ZstdDecompressor()


_codecs = _Codecs()


def pack(text: str) -> str | bytes:
    """``text`` packed when it is long enough to gain, else as it is (as is anything that
    is no str: a damaged snapshot's record, which the store then mends or drops)."""
    if not isinstance(text, str) or len(text) < PACK_MIN:
        return text
    packed = _codecs.compressor.compress(text.encode("utf-8", "surrogatepass"))
    # python-zstandard hands back its output buffer, sized for the worst case (more than
    # the text): a copy of the frame alone is what is kept.
    return bytes(memoryview(packed))


def unpack(value: str | bytes) -> str:
    """The text ``value`` packs (a value :func:`pack` left as it was comes back as it is)."""
    if isinstance(value, bytes):
        return _codecs.decompressor.decompress(value).decode("utf-8", "surrogatepass")
    return value


def utf8_size(value: object) -> int:
    """The length in UTF-8 bytes of the text ``value`` holds (0 for what is no text)."""
    if isinstance(value, bytes):
        return zstandard.frame_content_size(value)
    if not isinstance(value, str):
        return 0
    # isascii() is a flag check in CPython; stored content is mostly ASCII (compact_html).
    return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))


def text_memory(value: object) -> int:
    """The memory the text ``value`` holds takes unpacked, as ``sys.getsizeof`` of the str
    (exact for ASCII, which stored HTML mostly is): what per-feed memory bounds count, so a
    bound holds the same text whether or not it packs well."""
    if isinstance(value, bytes):
        return _STR_HEADER + zstandard.frame_content_size(value)
    return sys.getsizeof(value)
