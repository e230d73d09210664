"""Tests for planet.config: Venus/PlanetPlanet INI files in, a validated Config out."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import planet
from planet.config import (
    Config,
    ConfigError,
    Subscription,
    check_snapshot_file,
    load_config,
    parse_config,
)

FIXTURES = Path(__file__).parent / "fixtures"
PLANETPYTHON = str(FIXTURES / "config-planetpython.ini")
VENUS = str(FIXTURES / "config-venus.ini")


def parse(text: str) -> Config:
    return parse_config(text, "planet.ini")


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return str(info.value)


def names(config: Config) -> dict[str, str | None]:
    return {s.url: s.name for s in config.subscriptions}


# -- python/planet's config.ini --------------------------------------------------------


def test_planetpython_planet_section():
    config = load_config(PLANETPYTHON)
    assert config.path == PLANETPYTHON
    assert config.name == "Planet Python"
    assert config.link == "http://planetpython.org/"
    assert config.owner_name == "Python Software Foundation"
    assert config.owner_email == "planet@python.org"
    assert config.items_per_page == 25
    # Literal: Python 3's BasicInterpolation would reject this value.
    assert config.date_format == "%B %d, %Y %I:%M %p %Z"
    assert config.new_date_format == "%B %d, %Y"
    assert config.cache_directory == "/srv/cache"
    assert config.snapshot_file == "/srv/cache/planet-snapshot.json"
    assert config.user_agent == f"planet/{planet.__version__} (+http://planetpython.org/)"


def test_planetpython_subscriptions():
    config = load_config(PLANETPYTHON)
    assert len(config.subscriptions) == 13
    assert names(config) == {
        "http://dev.2degreesnetwork.com/feeds/posts/default/-/python": "2degrees",
        "http://lucumr.pocoo.org/feed.atom": "Armin Ronacher",
        "http://www.datacommunitydc.org/blog?format=RSS&tag=python": "Data Community DC",
        "http://gael-varoquaux.info/feeds/programming.atom.xml": "Gaël Varoquaux",
        "http://glyph.twistedmatrix.com/feeds/posts/default": "Glyph Lefkowitz",
        "http://freshfoo.com/blog/index.atom": "Menno's Musings",
        "http://ondrejcertik.blogspot.com/feeds/posts/default/-/python": "Ondřej Čertík",
        # `;` not preceded by blanks is part of the value, not a comment.
        "http://www.logarithmic.net/pfh?action=atom;hasname=1;name=gcgmgpghfpgdgpgegf": (
            "Paul Harrison"
        ),
        "https://pycoders.com/feed/planetpython": "PyCoder’s Weekly",
        "http://feeds.feedburner.com/TwistedMatrixLaboratories": "Twisted Matrix Labs",
        "http://william-os4y.livejournal.com/data/atom": "William's Journal",
        "http://wingware.com/blog/rss&noheader=1": "Wing Tips",
        "https://lukasz.langa.pl/python/atom.xml": "Łukasz Langa",
    }
    # File order is kept.
    assert config.subscriptions[0].url.startswith("http://dev.2degreesnetwork.com/")
    assert config.subscriptions[-1].url == "https://lukasz.langa.pl/python/atom.xml"


def test_planetpython_options_are_raw():
    config = load_config(PLANETPYTHON)
    gael = config.subscriptions[3]
    assert gael.name == "Gaël Varoquaux"
    assert dict(gael.options) == {"name": "Ga&#235;l Varoquaux"}


def test_planetpython_warnings():
    config = load_config(PLANETPYTHON)
    # Its templates are not next to the fixture: one line names them; the planet runs.
    encoding, warning = config.warnings
    assert encoding == f"{PLANETPYTHON}: [Planet] encoding: not used by planet; ignored"
    assert warning.startswith(
        f"{PLANETPYTHON}: template_files: config/index.html.tmpl config/rss20.xml.tmpl "
        "config/rss10.xml.tmpl config/opml.xml.tmpl config/foafroll.xml.tmpl "
        "config/summary.html.tmpl config/titles_only.html.tmpl: not found in "
    ), warning
    assert warning.endswith("; not made")
    assert config.output_dir == "/srv/planetpython.org/"
    assert config.theme is not None and config.theme.templates == ()


# -- a Venus config --------------------------------------------------------------------


def test_venus_planet_section():
    config = load_config(VENUS)
    assert config.name == "Planet Schmanet"
    assert config.link == "http://planet.schmanet.example/"
    assert config.owner_name == "Janet Weiss"
    assert config.owner_email == "janet@schmanet.example"
    assert config.items_per_page == 30  # "30 ; the front page ..." with the comment stripped
    assert config.feed_timeout == 30.0
    assert config.cache_directory == "/srv/schmanet/cache"  # %(root)s from [DEFAULT]
    assert config.snapshot_file == "/srv/schmanet/cache/planet-snapshot.json"
    assert config.date_format == "%A, %d %B %Y %H:%M"
    assert config.new_date_format == "%B %d, %Y"


def test_venus_subscriptions():
    config = load_config(VENUS)
    assert names(config) == {
        "http://www.netsplit.com/blog/index.rss": "Scott James Remnant",
        "http://www.gnome.org/~jdub/blog/?flav=rss": "Jeff Waugh",
        "http://usefulinc.com/edd/blog/rss91": "Edd Dumbill",
        "http://blog.clearairturbulence.org/?flav=rss": "Thom May",
        "https://intertwingly.net/blog/index.atom": "Sam Ruby",
    }
    urls = [s.url for s in config.subscriptions]
    assert "http://example.com/list.opml" not in urls
    assert "index.html.tmpl" not in urls
    assert "excerpt.py" not in urls


def test_venus_feed_options_include_default_section():
    config = load_config(VENUS)
    by_url = {s.url: s for s in config.subscriptions}
    keybuk = by_url["http://www.netsplit.com/blog/index.rss"]
    assert keybuk.options["face"] == "keybuk.png"
    assert keybuk.options["facewidth"] == "65"  # from [DEFAULT]
    jdub = by_url["http://www.gnome.org/~jdub/blog/?flav=rss"]
    assert jdub.options["facewidth"] == "70"  # the section's own value wins
    thom = by_url["http://blog.clearairturbulence.org/?flav=rss"]
    assert (thom.options["facewidth"], thom.options["faceheight"]) == ("59", "85")
    assert thom.options["ignore_in_feed"] == "updated"


def test_venus_warnings():
    config = load_config(VENUS)
    where = f"{os.path.dirname(os.path.abspath(VENUS))}, {os.getcwd()}"
    assert config.warnings == (
        f"{VENUS}: [Planet] spider_threads: not used by planet; ignored",
        f"{VENUS}: [Planet] output_theme: not used by planet; ignored",
        f"{VENUS}: [Planet] filters: not used by planet; ignored",
        f"{VENUS}: [Planet] filter_directories: not used by planet; ignored",
        f"{VENUS}: [index.html.tmpl] is a template section; "
        "planet does not use per-template keys; ignored",
        f"{VENUS}: [excerpt.py] is a filter section; planet does not run Venus filters; ignored",
        # face, facewidth, faceheight: the templates' channel_face, ...
        f"{VENUS}: key `future_dates` in 1 feed section is not used by planet; ignored",
        f"{VENUS}: key `ignore_in_feed` in 1 feed section is not used by planet; ignored",
        f"{VENUS}: template_files: opml.xml.xslt: xslt templates are not supported "
        "(htmltmpl .tmpl and Jinja2 .j2 are); not made",
        f"{VENUS}: template_files: index.html.tmpl atom.xml.tmpl rss20.xml.tmpl: not found in "
        f"{where}; not made",
        f"{VENUS}: bill_of_materials: images/logo.png planet.css: not found in {where}; not served",
    )


# -- defaults --------------------------------------------------------------------------


@pytest.mark.parametrize("config", [parse("[Planet]\n"), Config(path="planet.ini")])
def test_defaults(config):
    assert config.path == "planet.ini"
    assert config.name == "Unconfigured Planet"
    assert config.link == ""
    assert config.owner_name == ""
    assert config.owner_email == ""
    assert config.items_per_page == 60
    assert config.feed_timeout == 20.0
    assert config.cache_directory is None
    assert config.snapshot_file == "./planet-snapshot.json"
    assert config.snapshot_interval == 300.0
    assert config.fetch_interval == 1800.0
    assert config.per_host_concurrency == 2
    assert config.max_concurrency == 16
    assert config.max_feed_bytes == 15 * 1024 * 1024
    assert config.max_entries_per_feed == 200
    assert config.user_agent == f"planet/{planet.__version__}"
    assert config.date_format is None
    assert config.new_date_format is None
    assert config.subscriptions == ()
    assert config.warnings == ()


def test_empty_value_means_unset():
    config = parse("[Planet]\nname =\nitems_per_page =\nfetch_interval = \nuser_agent =\n")
    assert config.name == "Unconfigured Planet"
    assert config.items_per_page == 60
    assert config.fetch_interval == 1800.0
    assert config.user_agent == f"planet/{planet.__version__}"


def test_every_honoured_key():
    config = parse(
        "[Planet]\n"
        "name = P\nlink = https://p.example/\nowner_name = O\nowner_email = o@p.example\n"
        "items_per_page = 10\nfeed_timeout = 7.5\ncache_directory = /c\n"
        "snapshot_file = /s.json\nsnapshot_interval = 60\nfetch_interval = 900\n"
        "per_host_concurrency = 3\nmax_concurrency = 32\nmax_feed_bytes = 1024\n"
        "max_entries_per_feed = 0\nuser_agent = bot/1\ndate_format = %d\n"
        "new_date_format = %m\n"
    )
    assert (config.name, config.link, config.owner_name, config.owner_email) == (
        "P",
        "https://p.example/",
        "O",
        "o@p.example",
    )
    assert (config.items_per_page, config.feed_timeout, config.cache_directory) == (10, 7.5, "/c")
    assert (config.snapshot_file, config.snapshot_interval, config.fetch_interval) == (
        "/s.json",
        60.0,
        900.0,
    )
    assert (config.per_host_concurrency, config.max_concurrency) == (3, 32)
    assert (config.max_feed_bytes, config.max_entries_per_feed) == (1024, 0)
    assert (config.user_agent, config.date_format, config.new_date_format) == ("bot/1", "%d", "%m")
    assert config.warnings == ()


# -- derived defaults ------------------------------------------------------------------


def test_snapshot_file_default_without_cache_directory():
    assert parse("[Planet]\n").snapshot_file == "./planet-snapshot.json"


def test_snapshot_file_default_in_cache_directory():
    config = parse("[Planet]\ncache_directory = /var/cache/planet\n")
    assert config.snapshot_file == os.path.join("/var/cache/planet", "planet-snapshot.json")


def test_snapshot_file_explicit_wins_over_cache_directory():
    config = parse("[Planet]\ncache_directory = /var/cache/planet\nsnapshot_file = /tmp/s.json\n")
    assert config.snapshot_file == "/tmp/s.json"
    assert config.cache_directory == "/var/cache/planet"


def test_user_agent_without_link():
    assert parse("[Planet]\n").user_agent == f"planet/{planet.__version__}"


def test_user_agent_with_link():
    config = parse("[Planet]\nlink = https://planet.example.org/\n")
    assert config.user_agent == f"planet/{planet.__version__} (+https://planet.example.org/)"


def test_user_agent_explicit():
    config = parse("[Planet]\nlink = https://planet.example.org/\nuser_agent = mybot/2.0\n")
    assert config.user_agent == "mybot/2.0"


# -- bad values ------------------------------------------------------------------------

BAD_VALUES = [
    ("fetch_interval", "soon"),
    ("fetch_interval", "0"),
    ("fetch_interval", "-5"),
    ("fetch_interval", "nan"),
    ("fetch_interval", "inf"),
    ("fetch_interval", "59"),
    ("fetch_interval", "0.5"),
    ("parse_timeout", "0"),
    ("parse_timeout", "soon"),
    ("max_entry_bytes", "0"),
    ("max_entry_bytes", "lots"),
    ("max_bytes_per_feed", "-1"),
    ("access_log", "maybe"),
    ("feed_timeout", "soon"),
    ("feed_timeout", "0"),
    ("feed_timeout", "-0.5"),
    ("snapshot_interval", "hourly"),
    ("snapshot_interval", "0"),
    ("per_host_concurrency", "0"),
    ("per_host_concurrency", "-1"),
    ("per_host_concurrency", "two"),
    ("max_concurrency", "0"),
    ("max_concurrency", "1.5"),
    ("items_per_page", "0"),
    ("items_per_page", "many"),
    ("max_entries_per_feed", "-1"),
    ("max_entries_per_feed", "all"),
    ("max_feed_bytes", "0"),
    ("max_feed_bytes", "0k"),
    ("max_feed_bytes", "-1"),
    ("max_feed_bytes", "big"),
    ("max_feed_bytes", "1.5M"),
    ("max_feed_bytes", "15T"),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES)
def test_bad_value(key, value):
    message = error(f"[Planet]\n{key} = {value}\n")
    assert "\n" not in message
    assert message.startswith(f"planet.ini: [Planet] {key}: expected ")
    assert repr(value) in message


def test_bad_value_message_format():
    assert error("[Planet]\nfetch_interval = soon\n") == (
        "planet.ini: [Planet] fetch_interval: expected a number of seconds, got 'soon'"
    )


def test_bad_multiline_value_gives_one_line():
    message = error("[Planet]\nfetch_interval = soon\n  and later\n")
    assert "\n" not in message
    assert message.startswith("planet.ini: [Planet] fetch_interval: ")


def test_bad_link_is_only_a_warning():
    config = parse("[Planet]\nlink = planet.example.org\n")
    assert config.link == "planet.example.org"
    assert config.warnings == (
        "planet.ini: [Planet] link: not an absolute http(s) URL: 'planet.example.org'; used as is",
    )


# -- good values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"), [("1800", 1800.0), ("0.5", 0.5), ("1e3", 1000.0), ("+60", 60.0)]
)
def test_seconds(value, seconds):
    assert parse(f"[Planet]\nfeed_timeout = {value}\n").feed_timeout == seconds


@pytest.mark.parametrize("value", ["60", "60.0", "1800", "+90"])
def test_fetch_interval_of_a_minute_or_more(value):
    assert parse(f"[Planet]\nfetch_interval = {value}\n").fetch_interval == float(value)


def test_fetch_interval_below_a_minute_is_refused():
    assert error("[Planet]\nfetch_interval = 1\n") == (
        "planet.ini: [Planet] fetch_interval: expected at least 60 seconds, got '1'"
    )


def test_hardening_keys():
    config = parse(
        "[Planet]\nparse_timeout = 5\nmax_entry_bytes = 64k\nmax_bytes_per_feed = 2M\n"
        "access_log = yes\n"
    )
    assert (
        config.parse_timeout,
        config.max_entry_bytes,
        config.max_bytes_per_feed,
        config.access_log,
    ) == (5.0, 64 * 1024, 2 * 1024**2, True)
    default = parse("[Planet]\n")
    assert (
        default.parse_timeout,
        default.max_entry_bytes,
        default.max_bytes_per_feed,
        default.access_log,
    ) == (30.0, 512 * 1024, 8 * 1024**2, False)
    assert config.warnings == ()


def test_snapshot_file_that_is_a_directory_is_refused(tmp_path):
    (tmp_path / "snap").mkdir()
    config = parse(f"[Planet]\nsnapshot_file = {tmp_path / 'snap'}\n")
    with pytest.raises(ConfigError) as caught:
        check_snapshot_file(config)
    assert str(caught.value) == (
        f"planet.ini: [Planet] snapshot_file: {tmp_path / 'snap'} is a directory; "
        "name a file planet may replace"
    )
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is not a regular file"):
        check_snapshot_file(parse(f"[Planet]\nsnapshot_file = {fifo}\n"))
    check_snapshot_file(parse(f"[Planet]\nsnapshot_file = {tmp_path / 'new.json'}\n"))


def test_integer_with_surrounding_whitespace():
    # A continuation line makes the raw value "\n7 ".
    assert parse("[Planet]\nitems_per_page =\n    7 \n").items_per_page == 7
    assert parse("[Planet]\nitems_per_page =    +7\t\n").items_per_page == 7


def test_max_entries_per_feed_zero_means_no_limit():
    assert parse("[Planet]\nmax_entries_per_feed = 0\n").max_entries_per_feed == 0


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("1", 1),
        ("1048576", 1048576),
        ("100b", 100),
        ("512k", 512 * 1024),
        ("512KB", 512 * 1024),
        ("15M", 15 * 1024**2),
        ("15MiB", 15 * 1024**2),
        ("15 mb", 15 * 1024**2),
        ("2G", 2 * 1024**3),
    ],
)
def test_max_feed_bytes(value, size):
    assert parse(f"[Planet]\nmax_feed_bytes = {value}\n").max_feed_bytes == size


# -- unreadable files ------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = str(tmp_path / "planet.ini")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: cannot read: No such file or directory"


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path))
    assert str(info.value).startswith(f"{tmp_path}: cannot read: ")
    assert "\n" not in str(info.value)


def test_garbage_file(tmp_path):
    path = tmp_path / "planet.ini"
    path.write_text("[Planet]\nname = x\ngarbage\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == f"{path}: line 3: not a key = value line: 'garbage'"


def test_several_garbage_lines_name_the_first():
    assert error("[Planet]\r\nfoo\r\nbar\r\n") == (
        "planet.ini: line 2: not a key = value line: 'foo' (and 1 more bad line)"
    )


def test_no_section_header():
    assert error("# a planet\nname = x\n") == (
        "planet.ini: line 2: expected a [section] header before 'name = x'"
    )


def test_not_utf8(tmp_path):
    path = tmp_path / "planet.ini"
    path.write_bytes(b"[Planet]\nname = Ga\xebl\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: line 2: not valid UTF-8")
    assert "\n" not in message


def test_utf8_bom_tolerated(tmp_path):
    path = tmp_path / "planet.ini"
    path.write_bytes(b"\xef\xbb\xbf[Planet]\nname = Caf\xc3\xa9\n")
    assert load_config(str(path)).name == "Café"
    assert parse("\ufeff[Planet]\nname = x\n").name == "x"


def test_missing_planet_section():
    assert error("[http://f.example/]\nname = F\n") == "planet.ini: no [Planet] section"
    assert error("") == "planet.ini: no [Planet] section"


def test_planet_section_is_case_sensitive():
    message = error("[planet]\nname = x\n")
    assert message.startswith("planet.ini: no [Planet] section")
    assert "[planet]" in message


# -- Python 2 ConfigParser syntax ------------------------------------------------------


def test_inline_comments():
    config = parse(
        "[Planet]\n"
        "; a comment line\n"
        "# another\n"
        "name = Planet X ; a comment\n"
        "link = http://x.example/a;b\n"
    )
    assert config.name == "Planet X"
    assert config.link == "http://x.example/a;b"


def test_rem_comment_lines():
    config = parse("[Planet]\nrem a Python 2 comment\nREM another\nname = x\nremark = 1\n")
    assert config.name == "x"
    assert config.warnings == ("planet.ini: [Planet] remark: unknown key; ignored",)


def test_keys_are_case_insensitive():
    assert parse("[Planet]\nItems_Per_Page = 5\nNAME = X\n").items_per_page == 5


def test_double_quotes_alone_mean_empty():
    config = parse('[Planet]\nowner_email = ""\n[http://f.example/]\nname = ""\n')
    assert config.owner_email == ""
    assert config.subscriptions[0].name is None


def test_duplicate_keys_later_wins():
    assert parse("[Planet]\nname = a\nname = b\n").name == "b"


def test_duplicate_sections_later_wins():
    config = parse(
        "[Planet]\nname = a\n"
        "[http://f.example/]\nname = first\nface = f.png\n"
        "[http://g.example/]\nname = G\n"
        "[Planet]\nname = b\n"
        "[http://f.example/]\nname = second\n"
    )
    assert config.name == "b"
    assert [(s.url, s.name) for s in config.subscriptions] == [
        ("http://f.example/", "second"),
        ("http://g.example/", "G"),
    ]
    assert config.subscriptions[0].options["face"] == "f.png"


def test_section_name_is_stripped():
    config = parse("[Planet]\n[ http://f.example/feed ]\nname = F\n[http://f.example/feed]\n")
    assert [(s.url, s.name) for s in config.subscriptions] == [("http://f.example/feed", "F")]


def test_default_section_applies_to_planet():
    assert parse("[DEFAULT]\nitems_per_page = 12\n[Planet]\n").items_per_page == 12


# -- interpolation ---------------------------------------------------------------------


def test_interpolation_same_section():
    config = parse("[Planet]\nroot = /srv\ncache_directory = %(root)s/cache\n")
    assert config.cache_directory == "/srv/cache"
    assert config.warnings == ()  # `root` is used by the reference


def test_interpolation_from_default_section_case_insensitive():
    config = parse("[DEFAULT]\nroot = /srv\n[Planet]\ncache_directory = %(ROOT)s/cache\n")
    assert config.cache_directory == "/srv/cache"
    assert config.warnings == ()


def test_interpolation_nested():
    config = parse("[Planet]\na = %(b)s!\nb = %(c)s\nc = X\nname = %(a)s\n")
    assert config.name == "X!"


def test_interpolation_in_feed_section():
    config = parse(
        "[DEFAULT]\nwho = Sam\n[Planet]\n"
        "[http://f.example/]\nname = %(who)s Ruby\nx = %(__name__)s\n"
    )
    feed = config.subscriptions[0]
    assert feed.name == "Sam Ruby"
    assert feed.options["x"] == "http://f.example/"


def test_no_interpolation_without_reference():
    config = parse("[Planet]\nname = 100%% %s done\ndate_format = %B %d, %Y %I:%M %p %Z\n")
    assert config.name == "100%% %s done"
    assert config.date_format == "%B %d, %Y %I:%M %p %Z"


def test_double_percent_with_reference():
    assert parse("[Planet]\nwho = Jo\nname = %(who)s's 100%% planet\n").name == "Jo's 100% planet"


def test_date_formats_are_never_interpolated():
    # PlanetPlanet read them with raw=True.
    config = parse("[Planet]\ndate_format = %(x)s %B\nnew_date_format = %(y)s\n")
    assert (config.date_format, config.new_date_format) == ("%(x)s %B", "%(y)s")


def test_interpolation_missing_reference():
    message = error("[Planet]\nname = Planet %(owner)s\n")
    assert message == (
        "planet.ini: [Planet] name: %(owner)s refers to a key set neither in [Planet] "
        "nor in [DEFAULT]"
    )


def test_interpolation_missing_reference_in_feed():
    message = error("[Planet]\n[http://f.example/]\nname = %(nobody)s\n")
    assert message.startswith("planet.ini: [http://f.example/] name: %(nobody)s refers to")


def test_interpolation_missing_reference_in_ignored_key_is_not_fatal():
    config = parse(
        "[Planet]\nlog_format = %(levelname)s:%(message)s\n[http://f.example/]\nface = %(x)s\n"
    )
    assert config.subscriptions[0].options["face"] == "%(x)s"


def test_interpolation_loop():
    message = error("[Planet]\na = %(b)s\nb = %(a)s\nname = %(a)s\n")
    assert message.startswith("planet.ini: [Planet] name: %(...)s references nested more than")
    assert "\n" not in message


def test_interpolation_malformed():
    message = error("[Planet]\nname = %(oops\n")
    assert message.startswith("planet.ini: [Planet] name: bad %(...)s reference")


# -- sections and warnings -------------------------------------------------------------


def test_non_url_sections_are_ignored_with_a_warning():
    config = parse("[Planet]\n[feed1]\nname = one\n[ftp://f.example/feed]\n[http://ok.example/]\n")
    assert [s.url for s in config.subscriptions] == ["http://ok.example/"]
    assert config.warnings == (
        "planet.ini: [feed1] is not an http(s) feed URL; section ignored",
        "planet.ini: [ftp://f.example/feed] is not an http(s) feed URL; section ignored",
    )


def test_template_section_matched_by_path_or_basename():
    config = parse(
        "[Planet]\ntemplate_files = themes/x/index.html.tmpl config/rss20.xml.tmpl\n"
        "[index.html.tmpl]\ndays_per_page = 7\n"
        "[config/rss20.xml.tmpl]\nitems_per_page = 10\n"
    )
    assert config.subscriptions == ()
    assert config.template_files == ("themes/x/index.html.tmpl", "config/rss20.xml.tmpl")
    assert config.warnings == (
        "planet.ini: [index.html.tmpl] is a template section; "
        "planet does not use per-template keys; ignored",
        "planet.ini: [config/rss20.xml.tmpl] is a template section; "
        "planet does not use per-template keys; ignored",
    )


def test_filter_section_with_arguments():
    config = parse("[Planet]\nfilters = regexp_sifter.py?require=python\n[regexp_sifter.py]\n")
    assert config.warnings[1:] == (
        "planet.ini: [regexp_sifter.py] is a filter section; "
        "planet does not run Venus filters; ignored",
    )


@pytest.mark.parametrize("content_type", ["opml", "text/x-opml"])
def test_opml_reading_lists_are_recorded(content_type):
    config = parse(f"[Planet]\n[http://l.example/list]\ncontent_type = {content_type}\n")
    assert config.subscriptions == ()
    assert config.reading_lists == ("http://l.example/list",)
    assert config.warnings == ()


@pytest.mark.parametrize("content_type", ["foaf", "csv", "config"])
def test_other_reading_lists_are_ignored(content_type):
    config = parse(f"[Planet]\n[http://l.example/list]\ncontent_type = {content_type}\n")
    assert config.subscriptions == ()
    assert config.reading_lists == ()
    assert config.warnings == (
        f"planet.ini: {content_type} reading lists are not supported (OPML ones are); "
        "[http://l.example/list] ignored",
    )


def test_feed_content_type_is_not_a_reading_list():
    config = parse("[Planet]\n[http://f.example/]\ncontent_type = atom\n")
    assert [s.url for s in config.subscriptions] == ["http://f.example/"]
    assert config.warnings == (
        "planet.ini: key `content_type` in 1 feed section is not used by planet; ignored",
    )


def test_reading_lists_key():
    config = parse("[Planet]\nreading_lists = http://l.example/list.opml\n")
    assert config.warnings == (
        "planet.ini: [Planet] reading_lists: not a key planet reads: a reading list is a "
        "section of its own with `content_type = opml`; ignored",
    )


def test_operations_keys():
    config = parse(
        "[Planet]\nmax_entry_age_days = 30\nactivity_threshold = 180\nnew_feed_items = 4\n"
        "log_level = debug\n"
    )
    assert (config.max_entry_age_days, config.activity_threshold, config.new_feed_items) == (
        30,
        180,
        4,
    )
    assert config.log_level == "DEBUG"
    assert config.warnings == ()
    defaults = parse("[Planet]\n")
    assert (defaults.max_entry_age_days, defaults.activity_threshold) == (0, 0)
    assert (defaults.new_feed_items, defaults.log_level) == (0, "INFO")
    assert error("[Planet]\nlog_level = LOUD\n") == (
        "planet.ini: [Planet] log_level: expected one of DEBUG, INFO, WARNING, WARN, ERROR, "
        "CRITICAL, got 'LOUD'"
    )


# template_files, template_directories, bill_of_materials and output_dir are honoured now
# (planet.theme, planet.output).
LEGACY_KEYS = [
    "output_theme",
    "encoding",
    "filters",
    "filter_directories",
    "generator",
    "generator_uri",
    "spider_threads",
    "cache_keep_entries",
    "log_format",
    "locale",
    "pubsubhubbub_hub",
    "pubsubhubbub_feeds",
    "django_autoescape",
    "feed",
    "feedtype",
    "http_cache_directory",
    "cache_sources_directory",
    "cache_blacklist_directory",
    "cache_lists_directory",
]


def test_each_unused_venus_key_warns_once():
    text = "[Planet]\n" + "".join(f"{key} = x\n" for key in LEGACY_KEYS)
    assert parse(text).warnings == tuple(
        f"planet.ini: [Planet] {key}: not used by planet; ignored" for key in LEGACY_KEYS
    )


def test_unknown_key_warns_with_a_suggestion():
    config = parse("[Planet]\nfetch_intervall = 60\nfavourite_colour = blue\n")
    assert config.fetch_interval == 1800.0
    assert config.warnings == (
        "planet.ini: [Planet] fetch_intervall: unknown key (did you mean `fetch_interval`?); "
        "ignored",
        "planet.ini: [Planet] favourite_colour: unknown key; ignored",
    )


def test_unused_feed_key_warns_once_across_sections():
    text = "[Planet]\n" + "".join(
        f"[http://f{i}.example/feed]\nname = Feed {i}\nface = f{i}.png\n" for i in range(500)
    )
    config = parse(text)
    assert len(config.subscriptions) == 500
    assert config.warnings == (
        "planet.ini: key `face` in 500 feed sections is not used by planet; ignored",
    )
    assert config.subscriptions[499].options["face"] == "f499.png"


def test_unused_feed_key_in_one_section():
    config = parse("[Planet]\n[http://f.example/]\nnmae = F\n")
    assert config.warnings == (
        "planet.ini: key `nmae` in 1 feed section is not used by planet "
        "(did you mean `name`?); ignored",
    )


def test_accepted_feed_keys_do_not_warn():
    config = parse("[Planet]\n[http://f.example/]\nname = F\n")
    assert config.warnings == ()
    assert len(config.subscriptions[0].options) == 1


def test_unused_default_key():
    config = parse("[DEFAULT]\nhackergotchi = yes\n[Planet]\n")
    assert config.warnings == ("planet.ini: [DEFAULT] hackergotchi: not used by planet; ignored",)


# -- values ----------------------------------------------------------------------------


def test_subscription_name():
    config = parse(
        "[Planet]\n"
        "[http://a.example/]\n"
        "[http://b.example/]\nname =\n"
        "[http://c.example/]\nname = Ond&#345;ej &amp; &quot;Friends&quot;\n"
        '[http://d.example/]\nname = "Michael J.T. O\'Kelly"\n'
    )
    assert [s.name for s in config.subscriptions] == [
        None,
        None,
        'Ondřej & "Friends"',
        "Michael J.T. O'Kelly",
    ]


def test_subscription_options_are_immutable():
    feed = parse("[Planet]\n[http://f.example/]\nname = F\n").subscriptions[0]
    with pytest.raises(TypeError):
        feed.options["name"] = "G"  # type: ignore[index]
    source = {"name": "F"}
    copy = Subscription(url="http://f.example/", name="F", options=source)
    source["name"] = "G"
    assert copy.options["name"] == "F"


def test_values_are_hashable_and_comparable():
    text = "[Planet]\n[http://f.example/]\nname = F\nface = f.png\n"
    assert parse(text) == parse(text)
    assert hash(parse(text)) == hash(parse(text))
    other = parse("[Planet]\n[http://f.example/]\nname = F\nface = g.png\n")
    assert parse(text).subscriptions != other.subscriptions


def test_venus_feed_key_gets_no_suggestion():
    config = parse("[Planet]\n[http://f.example/]\nfilters = excerpt.py\n")
    assert config.warnings == (
        "planet.ini: key `filters` in 1 feed section is not used by planet; ignored",
    )


def test_feed_key_used_by_a_reference_does_not_warn():
    config = parse("[Planet]\n[http://f.example/]\nfirst = Sam\nname = %(first)s Ruby\n")
    assert config.subscriptions[0].name == "Sam Ruby"
    assert config.warnings == ()


def test_web_view_keys():
    config = parse("[Planet]\ndays_per_page = 10\ndedupe = no\ncache_max_age = 60\n")
    assert (config.days_per_page, config.dedupe, config.cache_max_age) == (10, False, 60)
    assert config.warnings == ()
    defaults = parse("[Planet]\n")
    assert (defaults.days_per_page, defaults.dedupe, defaults.cache_max_age) == (0, True, 300)
    for word in ("yes", "True", "on", "1"):
        assert parse(f"[Planet]\ndedupe = {word}\n").dedupe is True
    assert error("[Planet]\ndedupe = maybe\n") == (
        "planet.ini: [Planet] dedupe: expected yes or no (true/false, on/off, 1/0), got 'maybe'"
    )


CORPUS_OPML = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "corpus"
    / "opml"
    / "awesome-rss-feeds_recommended_with_category_Programming.opml"
)


def test_opml_file_reading_list_subscribes_its_50_feeds(tmp_path):
    if not CORPUS_OPML.exists():
        pytest.skip(f"corpus not found at {CORPUS_OPML}")
    relative = os.path.relpath(CORPUS_OPML, tmp_path)
    ini = tmp_path / "planet.ini"
    ini.write_text(
        "[Planet]\nname = Listed\n\n"
        f"[{relative}]\ncontent_type = opml\n\n"
        "[https://feeds.feedburner.com/codinghorror]\nname = My Own Name\n",
        encoding="utf-8",
    )
    config = load_config(str(ini))
    assert config.warnings == ()
    assert len(config.subscriptions) == 50
    direct = config.subscriptions[0]
    assert (direct.url, direct.name, direct.listed_by) == (
        "https://feeds.feedburner.com/codinghorror",
        "My Own Name",
        None,
    )
    listed = config.subscriptions[1:]
    assert all(s.listed_by == relative for s in listed)
    assert all(s.url.startswith(("http://", "https://")) for s in listed)
    assert all(s.name for s in listed)
    assert "https://feeds.feedburner.com/codinghorror" not in {s.url for s in listed}


def test_unreadable_reading_list_is_a_warning(tmp_path):
    ini = tmp_path / "planet.ini"
    ini.write_text("[Planet]\n[missing.opml]\ncontent_type = opml\n", encoding="utf-8")
    config = load_config(str(ini))
    assert config.subscriptions == ()
    assert len(config.warnings) == 1
    assert "[missing.opml] reading list:" in config.warnings[0]
    assert "cannot read" in config.warnings[0]


def test_file_list_entries_without_an_http_url_are_one_warning(tmp_path: Path):
    (tmp_path / "blogs.opml").write_text(
        "<opml><body>"
        "<outline text='ok' xmlUrl='http://one.example/feed'/>"
        "<outline text='feed' xmlUrl='feed://two.example/rss'/>"
        "<outline text='ftp' xmlUrl='ftp://three.example/rss'/>"
        "</body></opml>"
    )
    path = tmp_path / "planet.ini"
    path.write_text("[Planet]\nname = P\n\n[blogs.opml]\ncontent_type = opml\n")
    config = load_config(str(path))
    assert [s.url for s in config.subscriptions] == ["http://one.example/feed"]
    assert config.warnings == (
        f"{path}: [blogs.opml] reading list: 2 entries not subscribed: their xmlUrl is not "
        "an http(s) URL (feed://two.example/rss, ftp://three.example/rss)",
    )
    assert config.skipped_entries == (
        ("blogs.opml", ("feed://two.example/rss", "ftp://three.example/rss")),
    )


def test_whitespace_in_a_url_is_what_str_isspace_says():
    """A section name with any whitespace is no feed URL: the fast check (a regex) calls
    exactly the characters ``str.isspace`` does whitespace, every code point tried."""
    from planet import config as config_module

    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        assert bool(config_module._SPACE.search(f"http://a.example/{ch}x")) == ch.isspace(), hex(
            code
        )
    assert config_module._is_http_url("http://a.example/feed")
    assert not config_module._is_http_url("http://a.example/\u2003feed")
    assert not config_module._is_http_url("http://a.example/feed\x1c")
