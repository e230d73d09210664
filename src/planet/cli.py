"""The ``planet`` command: the operator's tools around the daemon.

``planet check``, ``run-once``, ``opml-import``, ``discover`` and ``snapshot inspect`` use
the daemon's own code (config loading, the whole service for one cycle, the OPML reader, the
fetcher, autodiscovery, the snapshot decoder), so what they say is what the daemon would do.
Exit status: 0 when all is well, 1 when the thing checked is bad (a config error, a damaged
snapshot, no feed found), 2 for a bad command line (argparse's own convention).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, TextIO

from planet import __version__
from planet.config import Config, ConfigError, check_snapshot_file, load_config
from planet.readinglist import ListedFeed, ReadingListError, load_opml_file, parse_opml

__all__ = ["main"]

#: What an ``opml-import`` or ``discover`` fetch may take, body included.
FETCH_TIMEOUT = 30.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``planet`` command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    run: Callable[[argparse.Namespace, TextIO], int] = args.run
    return run(args, sys.stdout)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="planet",
        description="Tools for running a planet feed aggregator; the daemon itself is "
        "`twistd planet --config FILE`.",
    )
    parser.add_argument("--version", action="version", version=f"planet {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="check a config file as the daemon would load it",
        description="Load CONFIG, its file reading lists included, exactly as `twistd planet` "
        "does at start; print every warning and the number of feeds. Exit status 1 on an "
        "error (usable as systemd's ExecStartPre).",
    )
    check.add_argument("config", metavar="CONFIG", help="the Planet INI file")
    check.add_argument(
        "--state-dir",
        metavar="DIR",
        help="as the daemon's --state-dir (default: $STATE_DIRECTORY when set)",
    )
    check.set_defaults(run=_check)

    once = commands.add_parser(
        "run-once",
        help="fetch every feed once, write the snapshot, exit (for cron)",
        description="Load CONFIG as `planet check` does and the snapshot as the daemon does, "
        "fetch every feed and reading list once (feeds backing off after errors or asked "
        "to wait keep their time), write the snapshot (and output_dir when set), then "
        "exit. The daemon's own code runs: a daemon started later on the same config "
        "loads that snapshot and serves it at once. Exit status 1 on a config error or "
        "when the snapshot cannot be written; failing feeds are no error.",
    )
    once.add_argument("config", metavar="CONFIG", help="the Planet INI file")
    once.add_argument(
        "--state-dir",
        metavar="DIR",
        help="as the daemon's --state-dir (default: $STATE_DIRECTORY when set)",
    )
    once.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="log warnings and errors only, no summary line (quiet cron mail)",
    )
    once.set_defaults(run=_run_once)

    opml = commands.add_parser(
        "opml-import",
        help="print the feeds of an OPML reading list as config sections",
        description="Read an OPML file or URL and print one INI section per feed (its title "
        "as `name`), ready to append to a planet's config.",
    )
    opml.add_argument("source", metavar="FILE.opml|URL", help="an OPML file or http(s) URL")
    opml.set_defaults(run=_opml_import)

    discover = commands.add_parser(
        "discover",
        help="list the feeds a web page advertises",
        description='Fetch URL and print the feeds it names in <link rel="alternate"> '
        "(the daemon's own autodiscovery), one per line; a URL that is a feed itself is "
        "printed as is. Exit status 1 when none is found.",
    )
    discover.add_argument("url", metavar="URL", help="a web page (or feed) http(s) URL")
    discover.set_defaults(run=_discover)

    snapshot = commands.add_parser(
        "snapshot", help="look into a snapshot file", description="Snapshot file tools."
    )
    snapshot_commands = snapshot.add_subparsers(title="commands", metavar="COMMAND")
    inspect = snapshot_commands.add_parser(
        "inspect",
        help="summarize a snapshot file",
        description="Print a snapshot's schema version, when it was written, and per feed its "
        "entry count and newest entry. Exit status 1 when the file is damaged.",
    )
    inspect.add_argument("file", metavar="FILE", help="a planet-snapshot.json")
    inspect.set_defaults(run=_snapshot_inspect)
    return parser


def _error(message: str) -> int:
    print(f"planet: error: {message}", file=sys.stderr)
    return 1


# --- check ---------------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> tuple[Config, Callable[[str], Config]]:
    """The config as the daemon loads it (``--state-dir``), and its reload function;
    raise :class:`ConfigError`."""
    from planet.tap import in_state_dir, state_directory

    state_dir = state_directory(args.state_dir)
    if state_dir is not None and not os.path.isdir(state_dir):
        raise ConfigError(f"state directory {state_dir}: not a directory")

    def load(path: str) -> Config:
        return in_state_dir(load_config(path), state_dir)

    config = load(args.config)
    check_snapshot_file(config)
    return config, load


def _check(args: argparse.Namespace, out: TextIO) -> int:
    try:
        config, _ = _load(args)
    except ConfigError as exc:
        return _error(str(exc))
    for warning in config.warnings:
        print(f"warning: {warning}", file=out)
    print(_summary(config), file=out)
    return 0


def _summary(config: Config) -> str:
    listed = sum(1 for s in config.subscriptions if s.listed_by is not None)
    url_lists = [r for r in config.reading_lists if r.startswith(("http://", "https://"))]
    parts = [f"{len(config.subscriptions) - listed} configured"]
    if listed:
        parts.append(f"{listed} from reading list files")
    line = f"{config.path}: ok: {_plural(len(config.subscriptions), 'feed')} ({', '.join(parts)})"
    if url_lists:
        line += f"; {_plural(len(url_lists), 'reading list URL')} fetched by the daemon"
    return line + f"; snapshot {config.snapshot_file}"


def _plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {words or word + 's'}"


# --- run-once ------------------------------------------------------------------------------


def _run_once(args: argparse.Namespace, out: TextIO) -> int:
    try:
        config, load = _load(args)
    except ConfigError as exc:
        return _error(str(exc))
    from planet.once import run_once

    return run_once(config, out, quiet=args.quiet, load=load)


# --- opml-import ---------------------------------------------------------------------------


def _opml_import(args: argparse.Namespace, out: TextIO) -> int:
    source: str = args.source
    try:
        if _is_url(source):
            result = _with_reactor(lambda reactor: _fetch(reactor, source))
            if result.error is not None or result.body is None:
                return _error(f"{source}: {result.error or 'no body'}")
            feeds = parse_opml(result.body, base_url=result.final_url)
        else:
            feeds = load_opml_file(source)
    except ReadingListError as exc:
        return _error(f"{source}: {exc}")
    if not feeds:
        return _error(f"{source}: the reading list names no feeds")
    print(f"# {_plural(len(feeds), 'feed')} from {source}", file=out)
    for feed in feeds:
        print(_section(feed), file=out)
    return 0


def _section(feed: ListedFeed) -> str:
    """One config section; the name written so that the config reader gives it back."""
    lines = [f"[{feed.url}]"]
    if feed.name:
        name = " ".join(feed.name.split())
        # `%(` would be read as an interpolation (`%%(` too: Venus's reader substitutes
        # again after `%%`), ` ;` as the start of a comment: neither has an escape.
        name = name.replace("%(", "% (").replace(" ;", " ,")
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = f'"{name}"'  # the reader drops one pair of surrounding quotes
        lines.append(f"name = {name}")
    return "\n".join(lines) + "\n"


def _is_url(value: str) -> bool:
    return value.lower().startswith(("http://", "https://"))


# --- discover ------------------------------------------------------------------------------


def _discover(args: argparse.Namespace, out: TextIO) -> int:
    from planet.model import utc_from_timestamp
    from planet.parse import discover_feeds, parse_feed

    url: str = args.url
    if not _is_url(url):
        return _error(f"{url}: not an http(s) URL")
    result = _with_reactor(lambda reactor: _fetch(reactor, url))
    if result.error is not None or result.body is None:
        return _error(f"{url}: {result.error or 'no body'}")
    parsed = parse_feed(
        result.body, result.final_url, utc_from_timestamp(0), result.content_type, 1
    )
    if parsed.error is None and not parsed.alternates:
        print(result.final_url, file=out)
        return 0
    found = parsed.alternates or discover_feeds(result.body, result.final_url)
    if not found:
        return _error(f'{url}: the page advertises no feed (no <link rel="alternate">)')
    for feed in found:
        print(feed, file=out)
    return 0


def _with_reactor(work: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``work(reactor)`` on the global reactor until it is done; return its result."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.python.failure import Failure

    outcome: list[Any] = []

    def start() -> None:
        d = Deferred.fromCoroutine(work(reactor))
        d.addBoth(outcome.append)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run()
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


async def _fetch(reactor: Any, url: str) -> Any:
    """One GET through the daemon's own fetcher (timeouts, size cap, redirects)."""
    from planet.fetch import Fetcher
    from planet.httpclient import make_client

    client, pool = make_client(reactor)
    fetcher = Fetcher(client, reactor, user_agent=f"planet/{__version__}", timeout=FETCH_TIMEOUT)
    try:
        return await fetcher.fetch(url)
    finally:
        fetcher.close()
        await pool.closeCachedConnections()


# --- snapshot inspect ----------------------------------------------------------------------


def _snapshot_inspect(args: argparse.Namespace, out: TextIO) -> int:
    from planet.snapshotcodec import SnapshotError, decode_all

    path: str = args.file
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        return _error(f"{path}: cannot read: {exc.strerror or exc}")
    try:
        entries, states, lists = decode_all(data)
        head = json.loads(data)
    except (SnapshotError, ValueError) as exc:
        return _error(f"{path}: damaged snapshot: {exc}")
    counts = Counter(e.feed_url for e in entries)
    newest: dict[str, datetime] = {}
    for entry in entries:
        if entry.feed_url not in newest or entry.published > newest[entry.feed_url]:
            newest[entry.feed_url] = entry.published
    print(f"{path}: schema {head.get('schema')}, written {head.get('written_at')}", file=out)
    print(
        f"{_plural(len(entries), 'entry', 'entries')}, "
        f"{_plural(len(states), 'feed')}, {_plural(len(lists), 'reading list URL')}",
        file=out,
    )
    for state in sorted(states, key=lambda s: s.url):
        when = newest.get(state.url)
        shown = when.strftime("%Y-%m-%d %H:%M UTC") if when is not None else "-"
        status = "failing" if state.failing else "ok"
        print(f"{counts.get(state.url, 0):6d}  {shown:20s}  {status:7s}  {state.url}", file=out)
    orphans = set(counts) - {s.url for s in states}
    for url in sorted(orphans):
        print(f"{counts[url]:6d}  {'-':20s}  {'no state':7s}  {url}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
