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

import difflib
import html
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
from planet.configkeys import (
    BOOL_KEYS,
    CHOICE_KEYS,
    COUNT_KEYS,
    FEED_KEYS,
    FORMAT_KEYS,
    HONOURED_KEYS,
    KNOWN_KEYS,
    LEGACY_KEYS,
    LIST_KEYS,
    READING_LIST_TYPES,
    SECONDS_KEYS,
    SECONDS_MINIMUM,
    SIZE_KEYS,
    TEXT_KEYS,
)
from planet.ini import DEFAULT_SECTION, ConfigError, IniSections, plural, read_sections
from planet.readinglist import (
    ListedFeed,
    ReadingListError,
    is_reading_list,
    read_opml_file,
    skipped_note,
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
SNAPSHOT_NAME = "planet-snapshot.json"


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
    #: WebSub: the public base URL of this planet's web view (empty: WebSub off).
    websub_callback: str = ""
    #: WebSub: the lease asked of hubs, and how often a feed with a subscription is polled.
    websub_lease_seconds: float = 864000.0
    websub_poll_interval: float = 86400.0
    date_format: str | None = None
    new_date_format: str | None = None
    subscriptions: tuple[Subscription, ...] = ()
    #: Venus reading lists (``content_type = opml`` sections): OPML file paths or URLs.
    reading_lists: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: File reading lists' entries whose xmlUrl is no http(s) URL, by list (``/feeds``).
    skipped_entries: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: Venus's theme: templates whose outputs are served (see :mod:`planet.theme`), the
    #: directories they are looked up in, files copied to ``output_dir`` and served.
    template_files: tuple[str, ...] = ()
    template_directories: tuple[str, ...] = ()
    bill_of_materials: tuple[str, ...] = ()
    #: Where every output is written after each cycle that changed something (None: nowhere).
    output_dir: str | None = None
    #: Every [Planet] key as written (templates see them all).
    options: Mapping[str, str] = field(factory=dict, converter=_freeze, hash=False)
    #: The compiled templates and materials (:class:`planet.theme.Theme`), set by
    #: :func:`load_config`; None: the default theme.
    theme: Any = field(default=None, eq=False, repr=False)


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
    config = expand_file_lists(parse_config(text, path))
    if not (config.template_files or config.bill_of_materials):
        return config
    from planet.theme import load_theme

    theme = load_theme(config)
    return evolve(config, theme=theme, warnings=config.warnings + theme.warnings)


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
    skipped: list[tuple[str, tuple[str, ...]]] = []
    for location in config.reading_lists:
        if _is_http_url(location):
            continue
        candidates = [os.path.join(os.path.dirname(config.path), location), location]
        path = next((c for c in candidates if os.path.exists(c)), location)
        try:
            found = read_opml_file(path)
        except ReadingListError as exc:
            warnings.append(f"{config.path}: [{location}] reading list: {exc}; not subscribed")
            continue
        listed[location] = list(found.feeds)
        if found.skipped:
            note = skipped_note(found.skipped, found.skipped_count)
            warnings.append(f"{config.path}: [{location}] reading list: {note}")
            skipped.append((location, found.skipped))
        if not listed[location]:
            warnings.append(
                f"{config.path}: [{location}] reading list {path} names no feeds; "
                "nothing subscribed from it"
            )
    return evolve(
        with_listed_feeds(config, listed), warnings=tuple(warnings), skipped_entries=tuple(skipped)
    )


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
    return _Parser(path, read_sections(text, path)).config()


#: Any character ``str.isspace`` calls whitespace (``\s`` of a str pattern is that test, in C:
#: a 10,000-feed config checks each section name; a generator over its characters took 60 ms).
_SPACE = re.compile(r"\s")


def _is_http_url(value: str) -> bool:
    """Whether ``value`` is an absolute http(s) URL."""
    if _SPACE.search(value):
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


class _Parser(IniSections):
    """Turns raw sections into a :class:`Config`, collecting warnings on the way."""

    def __init__(self, path: str, sections: dict[str, dict[str, str]]) -> None:
        super().__init__(path, sections)
        self.reading_lists: list[str] = []

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
        for key in TEXT_KEYS:
            settings[key] = self.get(planet, key)
        for key in FORMAT_KEYS:
            settings[key] = self.raw(planet, key)
        for key in SECONDS_KEYS:
            settings[key] = self.seconds(planet, key, SECONDS_MINIMUM.get(key, 0.0))
        for key, minimum in COUNT_KEYS.items():
            settings[key] = self.count(planet, key, minimum)
        for key in SIZE_KEYS:
            settings[key] = self.size(planet, key)
        for key in BOOL_KEYS:
            settings[key] = self.flag(planet, key)
        for key, choices in CHOICE_KEYS.items():
            settings[key] = self.choice(planet, key, choices)
        for key in LIST_KEYS:
            settings[key] = tuple((self.get(planet, key) or "").split())
        settings["options"] = self._planet_options()
        callback = settings.get("websub_callback")
        if callback and not _is_http_url(callback):
            raise self._error(
                planet, "websub_callback", f"expected an absolute http(s) URL, got {callback!r}"
            )
        # An empty value means "not set": the field keeps its default.
        return {key: value for key, value in settings.items() if value not in (None, "")}

    def _planet_options(self) -> dict[str, str]:
        options = {}
        for key in {**self.defaults, **self.sections[PLANET_SECTION]}:
            try:
                options[key] = self.get(PLANET_SECTION, key) or ""
            except ConfigError:
                options[key] = self.raw(PLANET_SECTION, key) or ""
        return options

    def _template_variable(self, key: str) -> bool:
        """Whether ``key`` is used as a variable of the operator's templates (any key not
        naming a feature of Venus planet lacks, once templates are configured)."""
        if key in LEGACY_KEYS or key == "reading_lists":
            return False
        return bool((self.raw(PLANET_SECTION, "template_files") or "").split())

    def _planet_key_warnings(self) -> Iterable[str]:
        link = self.get(PLANET_SECTION, "link")
        if link and not _is_http_url(link):
            yield (
                f"{self.path}: [{PLANET_SECTION}] link: not an absolute http(s) URL: "
                f"{link!r}; used as is"
            )
        for key in self.sections[PLANET_SECTION]:
            if key in HONOURED_KEYS or key in self.referenced:
                continue
            if self._template_variable(key):
                continue
            yield f"{self.path}: [{PLANET_SECTION}] {key}: {self._why_unused(key)}"

    def _why_unused(self, key: str) -> str:
        if key == "reading_lists":
            return (
                "not a key planet reads: a reading list is a section of its own "
                "with `content_type = opml`; ignored"
            )
        if key in LEGACY_KEYS:
            return "not used by planet; ignored"
        return f"unknown key{self._did_you_mean(key)}; ignored"

    @staticmethod
    def _did_you_mean(key: str) -> str:
        # A Venus key is no typo, even when close to one of ours (filters / filter).
        if key in LEGACY_KEYS:
            return ""
        close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.75)
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
                    "planet does not use per-template keys; ignored"
                )
            elif section in filters:
                warnings.append(
                    f"{self.path}: [{section}] is a filter section; "
                    "planet does not run Venus filters; ignored"
                )
            elif is_reading_list(self.sections[section]):
                self.reading_lists.append(section.strip())
            elif any(kind in content_type for kind in READING_LIST_TYPES):
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
        self.flag(section, "websub")  # a bad value fails here, naming the section
        options: dict[str, str] = {}
        for key in {**self.defaults, **self.sections[section]}:
            if key in FEED_KEYS:
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
            # A template's channel_<key>: used.
            counts.update(
                key for key in own if key not in FEED_KEYS and not self._template_variable(key)
            )
        for key, count in counts.items():
            if key in self.referenced:
                continue
            where = plural(count, "feed section")
            if key in self.defaults:
                where += " and [DEFAULT]"
            yield (
                f"{self.path}: key `{key}` in {where} is not used by planet"
                f"{self._did_you_mean(key)}; ignored"
            )
        used = HONOURED_KEYS | FEED_KEYS | counts.keys()
        for key in self.defaults:
            if key not in used and key not in self.referenced and not self._template_variable(key):
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
