"""Every config key planet knows, by kind, declared once: which it honours, which a reload
cannot apply (:data:`RESTART_KEYS`), and which Venus or PlanetPlanet knew and planet does
not use."""

from __future__ import annotations

# [Planet] keys planet.config turns into Config fields.
TEXT_KEYS = (
    "name",
    "link",
    "owner_name",
    "owner_email",
    "cache_directory",
    "snapshot_file",
    "user_agent",
    "output_dir",
    "websub_callback",
)
# Whitespace-separated lists of file names (Venus's theme keys).
LIST_KEYS = ("template_files", "template_directories", "bill_of_materials")
# strftime formats: PlanetPlanet read these with raw=True, so they are never interpolated.
FORMAT_KEYS = ("date_format", "new_date_format")
SECONDS_KEYS = (
    "feed_timeout",
    "snapshot_interval",
    "fetch_interval",
    "max_backoff",
    "parse_timeout",
    "websub_lease_seconds",
    "websub_poll_interval",
)
# Fetching a publisher's feed more often than once a minute is never polite (nor asking a
# hub for a lease shorter than that).
SECONDS_MINIMUM = {
    "fetch_interval": 60.0,
    "websub_lease_seconds": 60.0,
    "websub_poll_interval": 60.0,
}
COUNT_KEYS = {
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
SIZE_KEYS = ("max_feed_bytes", "max_entry_bytes", "max_bytes_per_feed")
#: Keys a reload (SIGHUP) cannot apply: the snapshot's place and the connection pool's shape
#: (the pool is built with the network guard, and may hold connections it allowed).
RESTART_KEYS = (
    "snapshot_file",
    "per_host_concurrency",
    "max_concurrency",
    "allow_private_networks",
)
BOOL_KEYS = ("dedupe", "allow_private_networks", "access_log")
CHOICE_KEYS = {"log_level": ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL")}
HONOURED_KEYS = frozenset(
    TEXT_KEYS
    + FORMAT_KEYS
    + SECONDS_KEYS
    + tuple(COUNT_KEYS)
    + SIZE_KEYS
    + BOOL_KEYS
    + tuple(CHOICE_KEYS)
    + LIST_KEYS
)
# Keys Venus or PlanetPlanet know and planet does not use: the warning says so rather than
# calling them unknown, which would suggest a typo.
LEGACY_KEYS = frozenset(
    {
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
FEED_KEYS = frozenset({"name", "websub"})
KNOWN_KEYS = sorted(HONOURED_KEYS | FEED_KEYS)
READING_LIST_TYPES = ("opml", "foaf", "csv", "config")
