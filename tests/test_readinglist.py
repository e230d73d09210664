"""Tests for planet.readinglist: OPML reading lists read strictly and leniently."""

from __future__ import annotations

import pickle
import re
import time
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planet.readinglist import (
    MAX_SKIPPED,
    ListedFeed,
    ReadingListError,
    is_reading_list,
    load_opml_file,
    parse_opml,
    read_opml,
    read_opml_file,
    skipped_note,
    unsupported_kind,
)

CORPUS_PATH = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "corpus"
    / "opml"
    / "awesome-rss-feeds_recommended_with_category_Programming.opml"
)
BASE = "https://lists.example.org/planet/feeds.opml"


def opml(body: str, *, broken: bool = False, head: str = "") -> str:
    """An OPML 2.0 document around ``body``; ``broken`` makes it ill-formed XML (a bare
    `&` in the head) without touching the outlines, so the lenient reading is used."""
    title = "Tom & Jerry's feeds" if broken else "Tom &amp; Jerry's feeds"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<opml version="2.0">\n'
        f"  <head><title>{title}</title>{head}</head>\n"
        f"  <body>\n{body}\n  </body>\n"
        "</opml>\n"
    )


def feeds(body: str, *, broken: bool = False, base_url: str | None = None) -> list[ListedFeed]:
    return parse_opml(opml(body, broken=broken).encode("utf-8"), base_url)


def is_well_formed(data: bytes) -> bool:
    try:
        ET.fromstring(data)  # noqa: S314 (test documents only)
    except ET.ParseError:
        return False
    return True


both_readings = pytest.mark.parametrize("broken", [False, True], ids=["strict", "lenient"])


def check_invariants(result: list[ListedFeed]) -> None:
    urls = [feed.url for feed in result]
    assert len(urls) == len(set(urls))
    for feed in result:
        assert isinstance(feed, ListedFeed)
        parts = urlsplit(feed.url)
        assert parts.scheme.lower() in ("http", "https")
        assert parts.hostname
        assert not any(c.isspace() for c in feed.url)
        if feed.name is not None:
            assert feed.name == " ".join(feed.name.split())
            assert feed.name


# -- the real list -----------------------------------------------------------------------


@pytest.fixture
def corpus() -> bytes:
    if not CORPUS_PATH.exists():
        pytest.skip(f"OPML corpus not found at {CORPUS_PATH} (expected ../shared next to the repo)")
    return CORPUS_PATH.read_bytes()


def test_corpus_list_is_not_well_formed(corpus: bytes) -> None:
    # The point of the lenient reading: expat gives up on this real list.
    assert not is_well_formed(corpus)


def test_corpus_list_has_exactly_its_feeds(corpus: bytes) -> None:
    # Counted independently of the parser: every xmlUrl="..." in the raw text.
    expected = re.findall(r'\bxmlUrl="([^"]*)"', corpus.decode("utf-8"))
    assert len(expected) == 50
    assert len(set(expected)) == 50

    result = parse_opml(corpus, "https://example.com/Programming.opml")

    assert [feed.url for feed in result] == expected
    check_invariants(result)
    assert all(feed.name for feed in result)


def test_corpus_list_names_and_urls(corpus: bytes) -> None:
    by_url = {feed.url: feed.name for feed in parse_opml(corpus)}
    # A bare `&` (and a `>`) in the title: kept as written.
    assert by_url["https://www.thirtythreeforty.net/posts/index.xml"] == "Posts on &> /dev/null"
    # A bare `&` in the description, which is not the name.
    assert by_url["https://buffer.com/resources/overflow/rss/"] == "Overflow - Buffer Resources"
    # The description holds raw HTML, `<a href="...">`, whose quotes end the value early;
    # the xmlUrl after it must not be lost.
    assert by_url["https://m.signalvnoise.com/feed/"] == "Signal v. Noise"
    assert by_url["https://overreacted.io/rss.xml"] == "Dan Abramov's Overreacted Blog RSS Feed"
    assert by_url["https://feeds.feedburner.com/codinghorror"] == "Coding Horror"


def test_corpus_list_from_file() -> None:
    if not CORPUS_PATH.exists():
        pytest.skip(f"OPML corpus not found at {CORPUS_PATH}")
    assert len(load_opml_file(str(CORPUS_PATH))) == 50


# -- structure ---------------------------------------------------------------------------

NESTED = """
    <outline text="Programming" title="Programming">
      <outline text="Python" title="Python">
        <outline type="rss" text="PSF" title="Python Software Foundation"
                 xmlUrl="https://pyfound.blogspot.com/feeds/posts/default" htmlUrl="https://pyfound.org/"/>
        <outline type="rss" text="Twisted" xmlUrl="https://twisted.org/feed.xml"/>
      </outline>
      <outline type="rss" text="Go" title="The Go Blog" xmlUrl="https://go.dev/blog/feed.atom"/>
    </outline>
    <outline type="link" text="Another list" url="https://example.com/other.opml"/>
    <outline text="Empty category"/>
    <outline type="rss" text="Top level" xmlUrl="http://example.com/top.xml"/>
"""


@both_readings
def test_nested_categories_in_document_order(broken: bool) -> None:
    assert feeds(NESTED, broken=broken) == [
        ListedFeed(
            "https://pyfound.blogspot.com/feeds/posts/default", "Python Software Foundation"
        ),
        ListedFeed("https://twisted.org/feed.xml", "Twisted"),
        ListedFeed("https://go.dev/blog/feed.atom", "The Go Blog"),
        ListedFeed("http://example.com/top.xml", "Top level"),
    ]


def test_broken_helper_really_breaks_the_xml() -> None:
    assert is_well_formed(opml(NESTED).encode())
    assert not is_well_formed(opml(NESTED, broken=True).encode())


@both_readings
def test_opml_without_outlines_is_an_empty_list(broken: bool) -> None:
    assert feeds("", broken=broken) == []
    assert parse_opml(b'<?xml version="1.0"?><opml version="2.0"/>') == []


@both_readings
def test_outlines_without_xmlurl_are_ignored(broken: bool) -> None:
    body = """
      <outline text="No feed here" htmlUrl="https://example.com/"/>
      <outline text="Blank" xmlUrl="   "/>
      <outline text="Empty" xmlUrl=""/>
      <outline text="Real" xmlUrl="https://example.com/feed"/>
    """
    assert feeds(body, broken=broken) == [ListedFeed("https://example.com/feed", "Real")]


@both_readings
def test_duplicates_keep_the_first(broken: bool) -> None:
    body = """
      <outline text="First" xmlUrl="https://example.com/feed"/>
      <outline text="Cat"><outline text="Second" xmlUrl="https://example.com/feed"/></outline>
      <outline text="Relative" xmlUrl="/feed"/>
      <outline text="Other" xmlUrl="https://example.com/other"/>
    """
    result = feeds(body, broken=broken, base_url="https://example.com/list.opml")
    assert result == [
        ListedFeed("https://example.com/feed", "First"),
        ListedFeed("https://example.com/other", "Other"),
    ]


@both_readings
def test_relative_urls_resolve_against_the_list(broken: bool) -> None:
    body = """
      <outline text="a" xmlUrl="a.xml"/>
      <outline text="b" xmlUrl="../b/atom.xml"/>
      <outline text="c" xmlUrl="/c.rss"/>
      <outline text="d" xmlUrl="//cdn.example.net/d.xml"/>
      <outline text="e" xmlUrl="?feed=rss2"/>
    """
    assert [f.url for f in feeds(body, broken=broken, base_url=BASE)] == [
        "https://lists.example.org/planet/a.xml",
        "https://lists.example.org/b/atom.xml",
        "https://lists.example.org/c.rss",
        "https://cdn.example.net/d.xml",
        "https://lists.example.org/planet/feeds.opml?feed=rss2",
    ]
    # Without the list's URL there is nothing to resolve against.
    assert feeds(body, broken=broken) == []
    # A list read from a file has no http(s) URL either.
    assert feeds(body, broken=broken, base_url="file:///etc/planet/feeds.opml") == []


@both_readings
def test_non_http_urls_are_dropped(broken: bool) -> None:
    body = """
      <outline text="js" xmlUrl="javascript:alert(1)"/>
      <outline text="js2" xmlUrl=" JavaScript:alert(1)"/>
      <outline text="file" xmlUrl="file:///etc/passwd"/>
      <outline text="ftp" xmlUrl="ftp://ftp.example.com/feed.xml"/>
      <outline text="data" xmlUrl="data:text/xml,&lt;rss/&gt;"/>
      <outline text="mailto" xmlUrl="mailto:someone@example.com"/>
      <outline text="no host" xmlUrl="http:///feed"/>
      <outline text="space" xmlUrl="http://example.com/a feed.xml"/>
      <outline text="bad ipv6" xmlUrl="http://[::1/feed"/>
      <outline text="ok" xmlUrl="  HTTPS://Example.COM/Feed.xml  "/>
    """
    expected = [ListedFeed("https://Example.COM/Feed.xml", "ok")]
    assert feeds(body, broken=broken, base_url=BASE) == expected
    assert feeds(body, broken=broken) == expected


@both_readings
def test_attribute_name_case_variants(broken: bool) -> None:
    body = """
      <outline text="one" xmlUrl="https://example.com/1"/>
      <outline text="two" xmlurl="https://example.com/2"/>
      <outline TEXT="three" XMLURL="https://example.com/3"/>
      <outline Title="four" text="not this" XmlUrl="https://example.com/4"/>
    """
    assert feeds(body, broken=broken) == [
        ListedFeed("https://example.com/1", "one"),
        ListedFeed("https://example.com/2", "two"),
        ListedFeed("https://example.com/3", "three"),
        ListedFeed("https://example.com/4", "four"),
    ]


@both_readings
def test_names(broken: bool) -> None:
    body = """
      <outline title="  Spread
           over\tlines  " text="x" xmlUrl="https://example.com/1"/>
      <outline title="" text="From text" xmlUrl="https://example.com/2"/>
      <outline title="   " xmlUrl="https://example.com/3"/>
      <outline xmlUrl="https://example.com/4"/>
      <outline title="Caf&#233; &#x2603; &amp; more &lt;b&gt;" xmlUrl="https://example.com/5"/>
    """
    assert feeds(body, broken=broken) == [
        ListedFeed("https://example.com/1", "Spread over lines"),
        ListedFeed("https://example.com/2", "From text"),
        ListedFeed("https://example.com/3", None),
        ListedFeed("https://example.com/4", None),
        ListedFeed("https://example.com/5", "Café ☃ & more <b>"),
    ]


def test_html_entities_in_a_lenient_list_are_decoded() -> None:
    body = """
      <outline title="Caf&eacute; &amp; Bar &ndash; R&D" xmlUrl="https://example.com/1?a=1&b=2"/>
      <outline title="Q&A &copy;" xmlUrl="https://example.com/2?a=1&amp;b=2"/>
    """
    assert feeds(body) == [
        ListedFeed("https://example.com/1?a=1&b=2", "Café & Bar – R&D"),
        ListedFeed("https://example.com/2?a=1&b=2", "Q&A ©"),
    ]


def test_entities_are_decoded_once() -> None:
    # `&amp;amp;` is an escaped `&amp;`: the text is "&amp;", whichever reading is used.
    body = '<outline title="A &amp;amp; B" xmlUrl="https://example.com/"/>'
    assert feeds(body)[0].name == "A &amp; B"
    assert feeds(body, broken=True)[0].name == "A &amp; B"


def test_lenient_markup() -> None:
    body = """
      <!-- <outline text="commented out" xmlUrl="https://example.com/commented"/> -->
      <outline text=unquoted xmlUrl=https://example.com/unquoted>
      <outline text='single quoted' xmlUrl='https://example.com/single'>
      <outline text="raw html" description="see <a href="https://example.com/">here</a>."
               xmlUrl="https://example.com/after-html" type="rss" />
      <outline text="unclosed" xmlUrl="https://example.com/unclosed">
      <opml:outline text="prefixed" xmlUrl="https://example.com/prefixed"/>
      <![CDATA[ <outline text="cdata" xmlUrl="https://example.com/cdata"/> ]]>
      <outline text="last" xmlUrl="https://example.com/last"
    """
    result = feeds(body, broken=True)
    assert result == [
        ListedFeed("https://example.com/unquoted", "unquoted"),
        ListedFeed("https://example.com/single", "single quoted"),
        ListedFeed("https://example.com/after-html", "raw html"),
        ListedFeed("https://example.com/unclosed", "unclosed"),
        ListedFeed("https://example.com/prefixed", "prefixed"),
        ListedFeed("https://example.com/last", "last"),
    ]


def test_comments_are_ignored_in_well_formed_lists() -> None:
    body = """
      <!-- <outline text="commented out" xmlUrl="https://example.com/commented"/> -->
      <outline text="kept" xmlUrl="https://example.com/kept"/>
    """
    assert feeds(body) == [ListedFeed("https://example.com/kept", "kept")]


def test_namespaced_opml() -> None:
    data = b"""<?xml version="1.0"?>
    <o:opml xmlns:o="http://opml.org/spec2" xmlns="http://opml.org/spec2">
      <body><outline text="ns" xmlUrl="https://example.com/ns"/></body>
    </o:opml>"""
    assert parse_opml(data) == [ListedFeed("https://example.com/ns", "ns")]


def test_bare_outlines_without_opml_root() -> None:
    data = b'<outline text="a" xmlUrl="https://example.com/a"/>'
    assert parse_opml(data) == [ListedFeed("https://example.com/a", "a")]


# -- DTDs are never expanded -------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE opml [
  <!ENTITY lol "lol">
  <!ELEMENT opml (#PCDATA)>
  {entities}
]>
<opml version="2.0"><head><title>&lol9;</title></head><body>
  <outline text="&lol9;" title="&lol9;" xmlUrl="https://example.com/laughs"/>
</body></opml>
"""


def _billion_laughs() -> bytes:
    entities = "\n".join(
        f'  <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    return BILLION_LAUGHS.replace("{entities}", entities).encode()


def test_entity_declarations_are_not_expanded() -> None:
    data = _billion_laughs()
    start = time.perf_counter()
    result = parse_opml(data)
    assert time.perf_counter() - start < 1.0
    assert result == [ListedFeed("https://example.com/laughs", "&lol9;")]


def test_external_entities_are_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    data = f"""<?xml version="1.0"?>
<!DOCTYPE opml [ <!ENTITY xxe SYSTEM "{secret.as_uri()}"> ]>
<opml><body><outline title="&xxe;" xmlUrl="https://example.com/x"/></body></opml>
""".encode()
    assert parse_opml(data) == [ListedFeed("https://example.com/x", "&xxe;")]


def test_entity_in_lowercase_doctype_is_not_expanded() -> None:
    data = b"""<!doctype opml [<!entity a "EXPANDED">]>
<opml><body><outline title="&a;" xmlUrl="https://example.com/"/></body></opml>"""
    assert parse_opml(data) == [ListedFeed("https://example.com/", "&a;")]


# -- not OPML at all ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"   \n\t ", "empty"),
        (b"\xef\xbb\xbf", "empty"),
        (
            b"<!DOCTYPE html><html><head><title>Feeds</title></head><body>"
            b'<a href="https://example.com/feed">feed</a></body></html>',
            "HTML page",
        ),
        (b"<html><body><p>Not found</p></body></html>", "HTML page"),
        (
            b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>',
            "<rss>",
        ),
        (b"just some text & nothing else", "no markup"),
        (b"\x00\x01\x02\xff\xfe\xfd", "not an OPML"),
        (b'{"feeds": ["https://example.com/feed"]}', "no markup"),
    ],
)
def test_not_opml(data: bytes, words: str) -> None:
    with pytest.raises(ReadingListError) as info:
        parse_opml(data)
    message = str(info.value)
    assert words in message
    assert "\n" not in message


# -- encodings ---------------------------------------------------------------------------

INTERNATIONAL = (
    '<outline title="Zürich ☃ Ελληνικά" xmlUrl="https://example.com/zürich"/>'
    '<outline title="日本語" xmlUrl="https://example.jp/フィード"/>'
)
INTERNATIONAL_FEEDS = [
    ListedFeed("https://example.com/zürich", "Zürich ☃ Ελληνικά"),
    ListedFeed("https://example.jp/フィード", "日本語"),
]


@both_readings
@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_byte_order_marks(codec: str, broken: bool) -> None:
    text = opml(INTERNATIONAL, broken=broken).replace('encoding="UTF-8"', 'encoding="UTF-16"')
    data = text.encode(codec)
    if codec in ("utf-16-le", "utf-16-be"):
        data = "\ufeff".encode(codec) + data
    assert parse_opml(data) == INTERNATIONAL_FEEDS


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_without_bom(codec: str) -> None:
    assert parse_opml(opml(INTERNATIONAL).encode(codec)) == INTERNATIONAL_FEEDS


@both_readings
@pytest.mark.parametrize("declared", ["ISO-8859-1", "latin-1", "iso8859_1"])
def test_latin1_declared(declared: str, broken: bool) -> None:
    body = '<outline title="Café Ñandú «ß»" xmlUrl="https://example.com/caf%C3%A9"/>'
    text = opml(body, broken=broken).replace('encoding="UTF-8"', f"encoding='{declared}'")
    data = text.encode("latin-1")
    assert b"\xe9" in data
    assert parse_opml(data) == [ListedFeed("https://example.com/caf%C3%A9", "Café Ñandú «ß»")]


def test_windows_1252_declared() -> None:
    text = opml('<outline title="“Smart” – quotes" xmlUrl="https://example.com/"/>')
    data = text.replace("UTF-8", "windows-1252").encode("cp1252")
    assert parse_opml(data)[0].name == "“Smart” – quotes"


@pytest.mark.parametrize("declared", ["no-such-encoding", "base64", "rot13", "UTF-16"])
def test_unusable_declared_encoding_falls_back_to_utf8(declared: str) -> None:
    text = opml('<outline title="Zürich" xmlUrl="https://example.com/"/>')
    data = text.replace("UTF-8", declared).encode("utf-8")
    assert parse_opml(data) == [ListedFeed("https://example.com/", "Zürich")]


def test_invalid_utf8_is_replaced() -> None:
    data = opml('<outline title="bad \xff byte" xmlUrl="https://example.com/"/>').encode("latin-1")
    assert parse_opml(data) == [ListedFeed("https://example.com/", "bad \ufffd byte")]


# -- files, config sections, pickling ----------------------------------------------------


def test_load_opml_file(tmp_path: Path) -> None:
    path = tmp_path / "list.opml"
    path.write_bytes(opml(NESTED, broken=True).encode("utf-8"))
    assert [f.name for f in load_opml_file(str(path))] == [
        "Python Software Foundation",
        "Twisted",
        "The Go Blog",
        "Top level",
    ]


def test_load_opml_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.opml"
    with pytest.raises(ReadingListError, match=r"missing\.opml: cannot read: No such file"):
        load_opml_file(str(missing))
    with pytest.raises(ReadingListError, match="cannot read"):
        load_opml_file(str(tmp_path))
    page = tmp_path / "page.opml"
    page.write_bytes(b"<html><body>Moved</body></html>")
    with pytest.raises(ReadingListError) as info:
        load_opml_file(str(page))
    assert str(info.value) == f"{page}: an HTML page, not an OPML reading list"


@pytest.mark.parametrize(
    ("content_type", "reading_list", "kind"),
    [
        ("opml", True, None),
        ("OPML", True, None),
        ("application/opml+xml", True, None),
        ("foaf", False, "foaf"),
        ("csv", False, "csv"),
        ("text/csv", False, "csv"),
        ("config", False, "config"),
        ("", False, None),
        ("rss", False, None),
        ("html", False, None),
        (None, False, None),
    ],
)
def test_section_kinds(content_type: str | None, reading_list: bool, kind: str | None) -> None:
    options = {"name": "x"} if content_type is None else {"content_type": content_type}
    assert is_reading_list(options) is reading_list
    assert unsupported_kind(options) == kind


def test_picklable() -> None:
    feed = ListedFeed("https://example.com/", "Name")
    assert pickle.loads(pickle.dumps(feed)) == feed
    err = pickle.loads(pickle.dumps(ReadingListError("x: y")))
    assert isinstance(err, ReadingListError)
    assert str(err) == "x: y"
    assert pickle.loads(pickle.dumps(parse_opml)) is parse_opml
    hash(feed)


# -- robustness --------------------------------------------------------------------------


def _parse_or_error(data: bytes) -> list[ListedFeed] | None:
    try:
        result = parse_opml(data)
    except ReadingListError as e:
        assert "\n" not in str(e)
        return None
    check_invariants(result)
    return result


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_raise_reading_list_error(data: bytes) -> None:
    _parse_or_error(data)


TOKENS = [
    "<opml>",
    "</opml>",
    "<body>",
    "</body>",
    "<outline",
    "<OUTLINE",
    "<x:outline",
    "</outline>",
    " xmlUrl=",
    " XMLURL=",
    " title=",
    " text=",
    "=",
    '"',
    "'",
    "http://a.example/",
    "https://b.example/f?x=1&y=2",
    "javascript:x",
    "//c.example/",
    "feed.xml",
    "&",
    "&amp;",
    "&lol;",
    "&#0;",
    "&#x110000;",
    ">",
    "/>",
    "<",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<![",
    "<!DOCTYPE opml [",
    "<!ENTITY lol 'x'>",
    "]>",
    "<?xml version='1.0' encoding='latin-1'?>",
    "<?xml version='1.0' encoding='utf-16'?>",
    "<?xml version='1.0' encoding='unicode_escape'?>",
    "\\ud800",
    " ",
    "\n",
    "\x00",
    "\x0b",
    "é",
    "\u2028",
    "<html>",
]


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00"]),
    st.lists(st.sampled_from(TOKENS), max_size=60),
    st.sampled_from(["utf-8", "latin-1", "utf-16-le"]),
)
def test_markup_soup_only_raises_reading_list_error(
    prefix: bytes, tokens: list[str], codec: str
) -> None:
    _parse_or_error(prefix + "".join(tokens).encode(codec, "replace"))


URL_POOL = [
    ("http://example.com/a", "http://example.com/a"),
    ("https://example.com/b?x=1&y=2", "https://example.com/b?x=1&y=2"),
    ("HTTP://EXAMPLE.COM/C", "http://EXAMPLE.COM/C"),
    ("http://EXAMPLE.COM/C", "http://EXAMPLE.COM/C"),
    ("feeds/e.xml", "http://example.com/feeds/e.xml"),
    ("ftp://example.com/d", None),
    ("javascript:alert(1)", None),
]
# Characters XML 1.0 allows in an attribute value.
XML_TEXT = st.text(
    st.characters(
        exclude_categories=["Cs"],
        exclude_characters="\ufffe\uffff",
        min_codepoint=0x9,
    ).filter(lambda c: c in "\t\n\r" or c >= " "),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(URL_POOL), XML_TEXT, XML_TEXT), max_size=12))
def test_strict_and_lenient_readings_agree(
    items: list[tuple[tuple[str, str | None], str, str]],
) -> None:
    body = "\n".join(
        f"<outline title={quoteattr(title)} text={quoteattr(text)} xmlUrl={quoteattr(url)}/>"
        for (url, _), title, text in items
    )
    expected: list[ListedFeed] = []
    for (_, resolved), title, text in items:
        if resolved is None or any(f.url == resolved for f in expected):
            continue
        name = " ".join(title.split()) or " ".join(text.split()) or None
        expected.append(ListedFeed(resolved, name))

    well_formed = opml(body).encode("utf-8")
    assert is_well_formed(well_formed)
    base = "http://example.com/list.opml"
    assert parse_opml(well_formed, base) == expected
    assert parse_opml(opml(body, broken=True).encode("utf-8"), base) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"<outline " + b"a" * 300_000,
        b'<outline a="' * 60_000,
        b"<outline a='" * 60_000,
        b"<outline " + b"x=" * 150_000,
        b"<outline " + b'x="' * 100_000 + b"'" * 100_000,
        b"<!--" * 100_000,
        b"<![CDATA[" * 50_000,
        b"<" * 300_000,
        b"<o:" * 100_000,
        b"<opml>" + b'<outline xmlUrl="http://example.com/' + b"a" * 300_000,
        b"&" * 300_000 + b"<opml>",
        b"<!DOCTYPE " + b"[" * 300_000,
    ],
    ids=lambda data: repr(data[:14]),
)
def test_pathological_input_is_fast(data: bytes) -> None:
    start = time.perf_counter()
    _parse_or_error(data)
    assert time.perf_counter() - start < 1.0


def test_large_list_is_fast() -> None:
    body = "\n".join(
        f'<outline text="Feed {i} & co" xmlUrl="https://example.com/{i}/feed"/>'
        for i in range(20_000)
    )
    start = time.perf_counter()
    result = parse_opml(opml(body).encode())
    assert time.perf_counter() - start < 2.0
    assert len(result) == 20_000
    assert result[-1] == ListedFeed("https://example.com/19999/feed", "Feed 19999 & co")


# -- entries whose xmlUrl is no http(s) URL are reported, not dropped silently -------------


@both_readings
def test_skipped_xml_urls_are_recorded(broken: bool) -> None:
    body = """
      <outline text="feed scheme" xmlUrl="feed://example.com/rss"/>
      <outline text="ftp" xmlUrl="ftp://ftp.example.com/feed.xml"/>
      <outline text="ftp again" xmlUrl="ftp://ftp.example.com/feed.xml"/>
      <outline text="js" xmlUrl="javascript:alert(1)"/>
      <outline text="relative" xmlUrl="feed.xml"/>
      <outline text="ok" xmlUrl="http://example.com/feed"/>
      <outline text="no xmlUrl at all" htmlUrl="http://example.com/"/>
    """
    found = read_opml(opml(body, broken=broken).encode())
    assert found.feeds == (ListedFeed("http://example.com/feed", "ok"),)
    assert found.skipped == (
        "feed://example.com/rss",
        "ftp://ftp.example.com/feed.xml",
        "javascript:alert(1)",
        "feed.xml",
    )
    assert found.skipped_count == 4
    # Resolved against the list's own URL, a relative one is a feed.
    based = read_opml(opml(body, broken=broken).encode(), base_url=BASE)
    assert len(based.feeds) == 2 and "feed.xml" not in based.skipped
    assert parse_opml(opml(body, broken=broken).encode()) == list(found.feeds)


def test_skipped_values_are_one_short_line_and_capped() -> None:
    body = "".join(f'<outline xmlUrl="gopher://g{i}.example/\x09x"/>' for i in range(150))
    body += f'<outline xmlUrl="ftp://{"a" * 500}"/>'
    found = read_opml(opml(body).encode())
    assert found.skipped_count == 151
    assert len(found.skipped) == MAX_SKIPPED
    assert found.skipped[0] == "gopher://g0.example/ x"
    assert all(len(s) <= 200 and s.isprintable() for s in found.skipped)


def test_skipped_note() -> None:
    assert skipped_note(("ftp://a",)) == (
        "1 entry not subscribed: its xmlUrl is not an http(s) URL (ftp://a)"
    )
    assert skipped_note(("a:", "b:", "c:", "d:"), 120) == (
        "120 entries not subscribed: their xmlUrl is not an http(s) URL (a:, b:, c:, ...)"
    )


def test_read_opml_file_reports_skipped(tmp_path: Path) -> None:
    path = tmp_path / "list.opml"
    path.write_text(
        opml('<outline xmlUrl="feed://x.example/"/><outline xmlUrl="http://y.example/"/>')
    )
    found = read_opml_file(str(path))
    assert [f.url for f in found.feeds] == ["http://y.example/"]
    assert found.skipped == ("feed://x.example/",)
