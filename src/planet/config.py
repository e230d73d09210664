"""Read a Planet Venus / PlanetPlanet INI file into a validated, immutable :class:`Config`.

Existing planets must keep working with their config files unchanged, so the file is read
the way Python 2's ``ConfigParser.ConfigParser`` read it for Venus and PlanetPlanet:

* duplicate sections and keys are allowed, the later one wins;
* ``;`` after whitespace starts a comment, as do lines starting with ``#``, ``;`` or ``rem``;
* keys are case-insensitive, section names are not;
* ``[DEFAULT]`` supplies keys to every section;
* a value is interpolated only when it contains ``%(``: ``%(key)s`` is replaced by ``key``
  from the same section or ``[DEFAULT]`` (``%%`` is then a literal ``%``); any other value
  is literal, so ``date_format = %B %d, %Y %I:%M %p %Z`` works as it did;
* a value that is exactly ``""`` is empty.

``[Planet]`` holds the planet-wide settings; every other section named by an absolute
http(s) URL is a subscription. Keys and sections planet does not use are ignored with one
warning each (returned in :attr:`Config.warnings`), never an error: the same file may still
drive Venus. Bad values of the keys planet does use raise :class:`ConfigError`.

``max_feed_bytes`` takes a number of bytes, optionally followed by ``k``, ``M`` or ``G``
(alone or with ``B``/``iB``: ``512k``, ``15M``, ``15MiB``, ``1GB``); every suffix is a power
of 1024. An empty value means the key is not set.

No Twisted here: this module is imported by the command line and by tests alike.
"""

from __future__ import annotations

import configparser
import difflib
import html
import math
import os
import re
import stat
import types
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from attrs import Factory, evolve, field, frozen

from planet import __version__
from planet.readinglist import (
    ListedFeed,
    ReadingListError,
    is_reading_list,
    load_opml_file,
    unsupported_kind,
)

__all__ = [
    "Config",
    "ConfigError",
    "Subscription",
    "listed_feeds",
    "load_config",
    "parse_config",
]

PLANET_SECTION = "Planet"
DEFAULT_SECTION = "DEFAULT"
SNAPSHOT_NAME = "planet-snapshot.json"

# [Planet] keys this module turns into Config fields.
_PLANET_TEXT_KEYS = (
    "name",
    "link",
    "owner_name",
    "owner_email",
    "cache_directory",
    "snapshot_file",
    "user_agent",
)
# strftime formats: PlanetPlanet read these with raw=True, so they are never interpolated.
_PLANET_FORMAT_KEYS = ("date_format", "new_date_format")
_PLANET_SECONDS_KEYS = (
    "feed_timeout",
    "snapshot_interval",
    "fetch_interval",
    "max_backoff",
    "parse_timeout",
)
# Fetching a publisher's feed more often than once a minute is never polite.
_PLANET_SECONDS_MINIMUM = {"fetch_interval": 60.0}
_PLANET_COUNT_KEYS = {
    "items_per_page": 1,
    "days_per_page": 0,
    "cache_max_age": 0,
    "max_entry_age_days": 0,
    "activity_threshold": 0,
    "new_feed_items": 0,
    "per_host_concurrency": 1,
    "max_concurrency": 1,
    "max_entries_per_feed": 0,
}
_PLANET_SIZE_KEYS = ("max_feed_bytes", "max_entry_bytes", "max_bytes_per_feed")
#: Keys a reload (SIGHUP) cannot apply: the snapshot's place and the connection pool's shape
#: (the pool is built with the network guard, and may hold connections it allowed).
RESTART_KEYS = (
    "snapshot_file",
    "per_host_concurrency",
    "max_concurrency",
    "allow_private_networks",
)
_PLANET_BOOL_KEYS = ("dedupe", "allow_private_networks", "access_log")
_PLANET_CHOICE_KEYS = {"log_level": ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL")}
_TRUE = frozenset({"1", "yes", "true", "on"})
_FALSE = frozenset({"0", "no", "false", "off"})
_PLANET_HONOURED = frozenset(
    _PLANET_TEXT_KEYS
    + _PLANET_FORMAT_KEYS
    + _PLANET_SECONDS_KEYS
    + tuple(_PLANET_COUNT_KEYS)
    + _PLANET_SIZE_KEYS
    + _PLANET_BOOL_KEYS
    + tuple(_PLANET_CHOICE_KEYS)
)
# Keys Venus or PlanetPlanet know and planet does not use: the warning says so rather than
# calling them unknown, which would suggest a typo.
_LEGACY_KEYS = frozenset(
    {
        "template_files",
        "output_dir",
        "output_theme",
        "encoding",
        "filters",
        "filter_directories",
        "template_directories",
        "bill_of_materials",
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
        "ignore_in_feed",
        "name_type",
        "title_type",
        "summary_type",
        "content_type",
        "future_dates",
        "xml_base",
        "filter",
        "exclude",
    }
)
# Per-feed keys planet uses or will use; any other key in a feed section is warned about.
_FEED_ACCEPTED = frozenset({"name"})
_KNOWN_KEYS = sorted(_PLANET_HONOURED | _FEED_ACCEPTED)
_READING_LIST_TYPES = ("opml", "foaf", "csv", "config")

# Python 2's ConfigParser stopped after 10 rounds of substitution; so do we.
_MAX_INTERPOLATION_DEPTH = 10
# `%(name)s`, a literal `%%`, or a `%(` that starts no valid reference (an error).
_INTERPOLATION_RE = re.compile(r"%\(([^)]*)\)s|%%|%\(")
_REFERENCE_RE = re.compile(r"%\(([^)]*)\)s")
# Python 2 also took a line whose first word is `rem` as a comment.
_REM_LINE_RE = re.compile(r"^[rR][eE][mM](?=\s|$).*$", re.MULTILINE)
_INTEGER_RE = re.compile(r"[+-]?[0-9]+")
_SIZE_RE = re.compile(r"([0-9]+)\s*(?:([kmg])(?:i?b)?|b)?", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# A header can never contain a newline, so with this as configparser's default section,
# [DEFAULT] stays an ordinary section and its keys can be told apart from a section's own.
_NO_DEFAULT_SECTION = "\n"


class ConfigError(Exception):
    """str(err) is one complete line naming the file, the section and the key."""


def _freeze(options: Mapping[str, str]) -> Mapping[str, str]:
    """Return a read-only copy of ``options``."""
    return types.MappingProxyType(dict(options))


@frozen
class Subscription:
    """One feed section: its URL, display name and every key as an unconverted string."""

    url: str
    name: str | None = None
    # Left out of the hash (a mappingproxy is unhashable) but still compared.
    options: Mapping[str, str] = field(factory=dict, converter=_freeze, hash=False)
    #: The reading list (file path or URL) this subscription came from; None if configured.
    listed_by: str | None = None


def _default_snapshot_file(config: Config) -> str:
    """Keep the snapshot next to the cache when there is one."""
    if config.cache_directory:
        return os.path.join(config.cache_directory, SNAPSHOT_NAME)
    return "./" + SNAPSHOT_NAME


def _default_user_agent(config: Config) -> str:
    """Product/version plus a contact URL when the planet has one."""
    if config.link:
        return f"planet/{__version__} (+{config.link})"
    return f"planet/{__version__}"


@frozen
class Config:
    """Everything planet reads from the config file, validated."""

    path: str
    name: str = "Unconfigured Planet"
    link: str = ""
    owner_name: str = ""
    owner_email: str = ""
    items_per_page: int = 60
    #: Venus's days_per_page: a page also ends after this many distinct days (0 = no limit).
    days_per_page: int = 0
    #: One river item for the same post in several feeds (links equal after normalization).
    dedupe: bool = True
    #: Cache-Control max-age of pages and feeds served, in seconds.
    cache_max_age: int = 300
    #: Entries older than this many days are dropped (0 = keep them all).
    max_entry_age_days: int = 0
    #: Venus: a feed with no new entry for this many days is marked inactive (0 = never).
    activity_threshold: int = 0
    #: Venus: at most this many entries of any one feed on a river page (0 = no limit).
    new_feed_items: int = 0
    #: Venus's log_level: DEBUG, INFO, WARNING, ERROR or CRITICAL.
    log_level: str = "INFO"
    feed_timeout: float = 20.0
    cache_directory: str | None = None
    snapshot_file: str = Factory(_default_snapshot_file, takes_self=True)
    snapshot_interval: float = 300.0
    fetch_interval: float = 1800.0
    #: Longest wait between retries of a failing feed (exponential backoff cap).
    max_backoff: float = 86400.0
    per_host_concurrency: int = 2
    max_concurrency: int = 16
    max_feed_bytes: int = 15 * 1024 * 1024
    max_entries_per_feed: int = 200
    #: Stored HTML of one entry; longer content is cut at an element boundary.
    max_entry_bytes: int = 512 * 1024
    #: Stored HTML of one feed's entries in all; the oldest beyond it are dropped.
    max_bytes_per_feed: int = 8 * 1024 * 1024
    #: Seconds one parse may take before its worker is killed and the feed fails.
    parse_timeout: float = 30.0
    #: One log line per request (off: the reverse proxy logs requests).
    access_log: bool = False
    user_agent: str = Factory(_default_user_agent, takes_self=True)
    #: False: fetch nothing from loopback, private or link-local addresses (see netguard).
    allow_private_networks: bool = True
    date_format: str | None = None
    new_date_format: str | None = None
    subscriptions: tuple[Subscription, ...] = ()
    #: Venus reading lists (``content_type = opml`` sections): OPML file paths or URLs.
    reading_lists: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def load_config(path: str) -> Config:
    """Read and validate the config file at ``path``; raise :class:`ConfigError`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: not valid UTF-8 (byte 0x{data[e.start]:02x}); "
            "save the file as UTF-8"
        ) from None
    return expand_file_lists(parse_config(text, path))


def check_snapshot_file(config: Config) -> None:
    """Refuse a snapshot path that exists and is not a regular file (it would be renamed over)."""
    path = config.snapshot_file
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # not there yet (written at the first snapshot) or not reachable: fine
    if not stat.S_ISREG(mode):
        from_cache = config.cache_directory is not None and os.path.basename(path) == SNAPSHOT_NAME
        key = "cache_directory" if from_cache else "snapshot_file"
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise ConfigError(
            f"{config.path}: [{PLANET_SECTION}] {key}: {path} is {kind}; "
            "name a file planet may replace"
        )


def expand_file_lists(config: Config) -> Config:
    """Subscribe the feeds of every reading list that is a local OPML file.

    A relative path is taken from the config file's directory, else the working directory.
    A list that cannot be read is a warning: the rest of the planet still runs.
    """
    listed: dict[str, list[ListedFeed]] = {}
    warnings = list(config.warnings)
    for location in config.reading_lists:
        if _is_http_url(location):
            continue
        candidates = [os.path.join(os.path.dirname(config.path), location), location]
        path = next((c for c in candidates if os.path.exists(c)), location)
        try:
            listed[location] = load_opml_file(path)
        except ReadingListError as exc:
            warnings.append(f"{config.path}: [{location}] reading list: {exc}; not subscribed")
            continue
        if not listed[location]:
            warnings.append(
                f"{config.path}: [{location}] reading list {path} names no feeds; "
                "nothing subscribed from it"
            )
    return evolve(with_listed_feeds(config, listed), warnings=tuple(warnings))


def listed_feeds(config: Config) -> dict[str, list[ListedFeed]]:
    """The feeds each reading list subscribed in ``config``, by list, in config order."""
    listed: dict[str, list[ListedFeed]] = {}
    for sub in config.subscriptions:
        if sub.listed_by is not None:
            listed.setdefault(sub.listed_by, []).append(ListedFeed(sub.url, sub.name))
    return listed


def with_listed_feeds(config: Config, listed: Mapping[str, Iterable[ListedFeed]]) -> Config:
    """``config`` plus the feeds of reading lists, after the configured subscriptions.

    A feed also listed directly in the config keeps its own section and settings; a feed in
    several lists is subscribed once.
    """
    subscriptions = [s for s in config.subscriptions if s.listed_by is None]
    seen = {_url_key(s.url) for s in subscriptions}
    for location in config.reading_lists:
        for feed in listed.get(location, ()):
            if _url_key(feed.url) in seen:
                continue
            seen.add(_url_key(feed.url))
            subscriptions.append(Subscription(url=feed.url, name=feed.name, listed_by=location))
    return evolve(config, subscriptions=tuple(subscriptions))


def _url_key(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest}"


def parse_config(text: str, path: str) -> Config:
    """Validate config ``text``; ``path`` is only used in messages."""
    return _Parser(path, _read_sections(text, path)).config()


def _read_sections(text: str, path: str) -> dict[str, dict[str, str]]:
    """Split ``text`` into sections of raw values, [DEFAULT] included, in file order."""
    parser = configparser.RawConfigParser(
        strict=False,
        inline_comment_prefixes=(";",),
        default_section=_NO_DEFAULT_SECTION,
        interpolation=None,
    )
    text = text.removeprefix("\ufeff")
    # Replaced by a comment rather than removed, so that line numbers stay right.
    text = _REM_LINE_RE.sub("#", text)
    try:
        parser.read_string(text, source=path)
    except configparser.MissingSectionHeaderError as e:
        raise ConfigError(
            f"{path}: line {e.lineno}: expected a [section] header before {_line(text, e.lineno)!r}"
        ) from None
    except configparser.ParsingError as e:
        lineno = e.errors[0][0] if e.errors else 0
        more = f" (and {_plural(len(e.errors) - 1, 'more bad line')})" if len(e.errors) > 1 else ""
        raise ConfigError(
            f"{path}: line {lineno}: not a key = value line: {_line(text, lineno)!r}{more}"
        ) from None
    except configparser.Error as e:
        raise ConfigError(f"{path}: {' '.join(str(e).split())}") from None
    sections: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        # Python 2 read a value of exactly "" as empty.
        sections[section] = {
            key: "" if value == '""' else value for key, value in parser.items(section)
        }
    return sections


def _line(text: str, lineno: int) -> str:
    """Line ``lineno`` (1-based) of ``text``, split the way configparser splits it."""
    lines = text.split("\n")
    return lines[lineno - 1].rstrip("\r") if 0 < lineno <= len(lines) else ""


def _is_http_url(value: str) -> bool:
    """Whether ``value`` is an absolute http(s) URL."""
    if any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def _names(value: str | None) -> set[str]:
    """The file names in a whitespace-separated Venus list, with and without directories."""
    names: set[str] = set()
    for item in (value or "").split():
        # Venus filters may carry arguments: regexp_sifter.py?require=python
        for name in (item, item.split("?", 1)[0]):
            names.update((name, os.path.basename(name)))
    return names


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class _Parser:
    """Turns raw sections into a :class:`Config`, collecting warnings on the way."""

    def __init__(self, path: str, sections: dict[str, dict[str, str]]) -> None:
        self.path = path
        self.sections = sections
        self.reading_lists: list[str] = []
        self.defaults = sections.pop(DEFAULT_SECTION, {})
        # A key some %(key)s refers to is used, even when planet has no use for it itself.
        self.referenced = {
            ref.lower()
            for values in (self.defaults, *sections.values())
            for value in values.values()
            for ref in _REFERENCE_RE.findall(value)
        }

    # -- values ------------------------------------------------------------------------

    def _error(self, section: str, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: [{section}] {key}: {message}")

    def raw(self, section: str, key: str) -> str | None:
        """The uninterpolated value of ``key`` in ``section``, falling back to [DEFAULT]."""
        value = self.sections[section].get(key)
        return self.defaults.get(key) if value is None else value

    def get(self, section: str, key: str) -> str | None:
        """The interpolated value of ``key``, or None when it is not set."""
        value = self.raw(section, key)
        if value is None or "%(" not in value:
            return value
        return self._interpolate(section, key, value)

    def _interpolate(self, section: str, key: str, value: str) -> str:
        lookup = {**self.defaults, **self.sections[section], "__name__": section}

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "%%":
                return "%"
            ref = match.group(1)
            if ref is None:
                raise self._error(
                    section, key, f"bad %(...)s reference in {value!r} (use %% for a %)"
                )
            ref = ref.lower()
            if ref not in lookup:
                raise self._error(
                    section,
                    key,
                    f"%({ref})s refers to a key set neither in [{section}] nor in [DEFAULT]",
                )
            return lookup[ref]

        for _ in range(_MAX_INTERPOLATION_DEPTH):
            value = _INTERPOLATION_RE.sub(substitute, value)
            if "%(" not in value:
                return value
        raise self._error(
            section,
            key,
            f"%(...)s references nested more than {_MAX_INTERPOLATION_DEPTH} deep "
            "(does a key refer to itself?)",
        )

    def seconds(self, section: str, key: str) -> float | None:
        """A positive, finite number of seconds."""
        value = self.get(section, key)
        if not value:
            return None
        try:
            seconds = float(value.strip())
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds):
            raise self._error(section, key, f"expected a number of seconds, got {value!r}")
        if seconds <= 0:
            raise self._error(
                section, key, f"expected a number of seconds greater than 0, got {value!r}"
            )
        minimum = _PLANET_SECONDS_MINIMUM.get(key, 0.0)
        if seconds < minimum:
            raise self._error(section, key, f"expected at least {minimum:g} seconds, got {value!r}")
        return seconds

    def count(self, section: str, key: str, minimum: int) -> int | None:
        """A whole number of at least ``minimum``."""
        value = self.get(section, key)
        if not value:
            return None
        if not _INTEGER_RE.fullmatch(value.strip()):
            raise self._error(section, key, f"expected a whole number, got {value!r}")
        number = int(value.strip())
        if number < minimum:
            raise self._error(
                section, key, f"expected a whole number of at least {minimum}, got {value!r}"
            )
        return number

    def flag(self, section: str, key: str) -> bool | None:
        """A yes/no value, spelt as Python 2's ConfigParser.getboolean accepted it."""
        value = self.get(section, key)
        if not value:
            return None
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise self._error(
            section, key, f"expected yes or no (true/false, on/off, 1/0), got {value!r}"
        )

    def choice(self, section: str, key: str, choices: tuple[str, ...]) -> str | None:
        """One of ``choices``, case-insensitively; returned as spelt in ``choices``."""
        value = self.get(section, key)
        if not value:
            return None
        for choice in choices:
            if value.strip().upper() == choice:
                return choice
        raise self._error(section, key, f"expected one of {', '.join(choices)}, got {value!r}")

    def size(self, section: str, key: str) -> int | None:
        """A positive number of bytes, optionally with a k/M/G (1024-based) suffix."""
        value = self.get(section, key)
        if not value:
            return None
        match = _SIZE_RE.fullmatch(value.strip())
        if not match:
            raise self._error(
                section,
                key,
                f"expected a size in bytes such as 15728640, 512k or 15M, got {value!r}",
            )
        size = int(match.group(1)) * _SIZE_FACTORS[(match.group(2) or "").lower()]
        if size < 1:
            raise self._error(section, key, f"expected a size of at least 1 byte, got {value!r}")
        return size

    # -- the whole file ----------------------------------------------------------------

    def config(self) -> Config:
        if PLANET_SECTION not in self.sections:
            hint = next(
                (
                    f" (section names are case-sensitive: found [{name}])"
                    for name in self.sections
                    if name.lower() == PLANET_SECTION.lower()
                ),
                "",
            )
            raise ConfigError(f"{self.path}: no [{PLANET_SECTION}] section{hint}")
        settings = self._planet_settings()
        section_warnings, subscriptions = self._subscriptions()
        warnings = [
            *self._planet_key_warnings(),
            *section_warnings,
            *self._feed_key_warnings(subscriptions),
        ]
        return Config(
            path=self.path,
            subscriptions=tuple(subscription for subscription, _ in subscriptions),
            reading_lists=tuple(self.reading_lists),
            warnings=tuple(warnings),
            **settings,
        )

    def _planet_settings(self) -> dict[str, Any]:
        """Keyword arguments for :class:`Config` from the keys set in [Planet]."""
        planet = PLANET_SECTION
        settings: dict[str, Any] = {}
        for key in _PLANET_TEXT_KEYS:
            settings[key] = self.get(planet, key)
        for key in _PLANET_FORMAT_KEYS:
            settings[key] = self.raw(planet, key)
        for key in _PLANET_SECONDS_KEYS:
            settings[key] = self.seconds(planet, key)
        for key, minimum in _PLANET_COUNT_KEYS.items():
            settings[key] = self.count(planet, key, minimum)
        for key in _PLANET_SIZE_KEYS:
            settings[key] = self.size(planet, key)
        for key in _PLANET_BOOL_KEYS:
            settings[key] = self.flag(planet, key)
        for key, choices in _PLANET_CHOICE_KEYS.items():
            settings[key] = self.choice(planet, key, choices)
        # An empty value means "not set": the field keeps its default.
        return {key: value for key, value in settings.items() if value not in (None, "")}

    def _planet_key_warnings(self) -> Iterable[str]:
        link = self.get(PLANET_SECTION, "link")
        if link and not _is_http_url(link):
            yield (
                f"{self.path}: [{PLANET_SECTION}] link: not an absolute http(s) URL: "
                f"{link!r}; used as is"
            )
        for key in self.sections[PLANET_SECTION]:
            if key in _PLANET_HONOURED or key in self.referenced:
                continue
            yield f"{self.path}: [{PLANET_SECTION}] {key}: {self._why_unused(key)}"

    def _why_unused(self, key: str) -> str:
        if key == "reading_lists":
            return (
                "not a key planet reads: a reading list is a section of its own "
                "with `content_type = opml`; ignored"
            )
        if key in _LEGACY_KEYS:
            return "not used by planet; ignored"
        return f"unknown key{self._did_you_mean(key)}; ignored"

    @staticmethod
    def _did_you_mean(key: str) -> str:
        # A Venus key is no typo, even when close to one of ours (filters / filter).
        if key in _LEGACY_KEYS:
            return ""
        close = difflib.get_close_matches(key, _KNOWN_KEYS, n=1, cutoff=0.75)
        return f" (did you mean `{close[0]}`?)" if close else ""

    def _subscriptions(
        self,
    ) -> tuple[list[str], list[tuple[Subscription, dict[str, str]]]]:
        """Warnings for ignored sections, and each subscription with its own keys."""
        planet = PLANET_SECTION
        templates = _names(self.raw(planet, "template_files"))
        filters = _names(self.raw(planet, "filters"))
        for section in self.sections:
            filters |= _names(self.sections[section].get("filters"))
        warnings: list[str] = []
        # Sections that differ only in surrounding blanks are one feed; the later key wins.
        feeds: dict[str, dict[str, str]] = {}
        feed_sections: dict[str, str] = {}
        for section, own in self.sections.items():
            if section == planet:
                continue
            content_type = (self.raw(section, "content_type") or "").lower()
            if section in templates:
                warnings.append(
                    f"{self.path}: [{section}] is a template section; "
                    "planet does not use Venus templates; ignored"
                )
            elif section in filters:
                warnings.append(
                    f"{self.path}: [{section}] is a filter section; "
                    "planet does not run Venus filters; ignored"
                )
            elif is_reading_list(self.sections[section]):
                self.reading_lists.append(section.strip())
            elif any(kind in content_type for kind in _READING_LIST_TYPES):
                warnings.append(
                    f"{self.path}: {unsupported_kind(self.sections[section])} reading lists "
                    f"are not supported (OPML ones are); [{section}] ignored"
                )
            elif _is_http_url(section.strip()):
                url = section.strip()
                feeds.setdefault(url, {}).update(own)
                feed_sections.setdefault(url, section)
            else:
                warnings.append(
                    f"{self.path}: [{section}] is not an http(s) feed URL; section ignored"
                )
        subscriptions = []
        for url, own in feeds.items():
            section = feed_sections[url]
            self.sections[section] = own
            subscriptions.append((self._subscription(url, section), own))
        return warnings, subscriptions

    def _subscription(self, url: str, section: str) -> Subscription:
        options: dict[str, str] = {}
        for key in {**self.defaults, **self.sections[section]}:
            if key in _FEED_ACCEPTED:
                options[key] = self.get(section, key) or ""
            else:
                # Keys planet ignores must not make the file fail: keep them raw if need be.
                try:
                    options[key] = self.get(section, key) or ""
                except ConfigError:
                    options[key] = self.raw(section, key) or ""
        return Subscription(url=url, name=_display_name(options.get("name")), options=options)

    def _feed_key_warnings(
        self, subscriptions: list[tuple[Subscription, dict[str, str]]]
    ) -> Iterable[str]:
        """One warning per unused key across all feed sections, and per unused [DEFAULT] key."""
        counts: Counter[str] = Counter()
        for _, own in subscriptions:
            counts.update(key for key in own if key not in _FEED_ACCEPTED)
        for key, count in counts.items():
            if key in self.referenced:
                continue
            where = _plural(count, "feed section")
            if key in self.defaults:
                where += " and [DEFAULT]"
            yield (
                f"{self.path}: key `{key}` in {where} is not used by planet"
                f"{self._did_you_mean(key)}; ignored"
            )
        used = _PLANET_HONOURED | _FEED_ACCEPTED | counts.keys()
        for key in self.defaults:
            if key not in used and key not in self.referenced:
                yield f"{self.path}: [{DEFAULT_SECTION}] {key}: not used by planet; ignored"


def _display_name(value: str | None) -> str | None:
    """A feed's configured name as people should see it, or None."""
    if value is None:
        return None
    value = value.strip()
    # python/planet's config/sort-ini.py wraps names containing `'` in double quotes and
    # drops them again when reading: they are quoting, not part of the name.
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return html.unescape(value).strip() or None
