"""planet.urls: the plain-URL short cut says what urlsplit says."""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import example, given
from hypothesis import strategies as st

from planet.urls import _PLAIN, scheme_and_host

_PIECES = st.sampled_from(
    ["http", "HTTPS", "ftp", "://", ":", "//", "/", "?", "#", "@", "[", "]", ".", "-", "a",
     "Ex", "9", "80", " ", "\t", "\n", "x:y@", "[::1]", "%41", "\u00e9", "_"]
)  # fmt: skip


def _long_way(url: str) -> tuple[str, str]:
    try:
        parts = urlsplit(url)
        return parts.scheme.lower(), (parts.hostname or "").lower()
    except ValueError:
        return "", ""


@given(st.lists(_PIECES, max_size=12).map("".join))
@example("http://A.Example:8080/feed?x")
@example("https://a.example")
@example("http://a.example:/")
@example("http://a.example./#f")
@example("http://user@a.example/")
@example("http://a.example:80x/")
def test_the_short_cut_agrees_with_urlsplit(url: str) -> None:
    scheme_and_host.cache_clear()
    assert scheme_and_host(url) == _long_way(url)


def test_the_short_cut_takes_plain_feed_urls() -> None:
    for url in ("http://h1.example/f1", "https://blog.example.com:8443/atom.xml", "http://1.2.3.4"):
        assert _PLAIN.match(url), url
