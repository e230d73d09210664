"""``twistd planet``: command-line options and the service maker."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import attrs
from twisted.application.service import IService
from twisted.python import usage

from planet import memory
from planet.config import Config, ConfigError, check_snapshot_file, load_config
from planet.snapshotcodec import gc_paused

DEFAULT_LISTEN = "tcp:8080:interface=127.0.0.1"


class Options(usage.Options):
    """Options of ``twistd planet``."""

    synopsis = "--config FILE [--listen ENDPOINT] [--state-dir DIR]"
    longdesc = (
        "Run the planet feed aggregator: fetch the feeds of a Planet-style INI config and "
        "serve their merged river as HTML and Atom."
    )
    optParameters = [
        ["config", "c", None, "Planet INI configuration file (required)."],
        ["listen", "l", DEFAULT_LISTEN, "Twisted endpoint string for the web view."],
        [
            "state-dir",
            None,
            None,
            "Directory a relative snapshot_file (and the default one) is kept in "
            "[default: $STATE_DIRECTORY, set by systemd's StateDirectory=; else the "
            "working directory].",
        ],
    ]


def state_directory(option: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """``--state-dir`` if given, else the first entry of ``$STATE_DIRECTORY``, else None.

    systemd sets ``$STATE_DIRECTORY`` from ``StateDirectory=``; with several directories it
    is a colon-separated list.
    """
    if option:
        return option
    first = environ.get("STATE_DIRECTORY", "").split(":")[0]
    return first or None


def in_state_dir(config: Config, state_dir: str | None) -> Config:
    """``config`` with a relative ``snapshot_file`` made absolute against ``state_dir``."""
    if state_dir is None or os.path.isabs(config.snapshot_file):
        return config
    path = os.path.normpath(os.path.join(os.path.abspath(state_dir), config.snapshot_file))
    return attrs.evolve(config, snapshot_file=path)


def fail(message: str) -> None:
    """One clear error line on stderr, then exit non-zero before anything starts."""
    print(f"planet: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def makeService(options: Options, reactor: Any = None) -> IService:
    """Load the config (exiting on any error in it) and build the daemon's service.

    The process's malloc is set up here too, before any thread starts (two arenas, fixed
    thresholds: see :mod:`planet.memory`).
    """
    # Validation here rather than in postOptions: twistd answers a UsageError with its
    # whole help text, and an operator needs the one line that names the problem.
    if not options["config"]:
        fail("--config FILE is required (a Planet INI file, e.g. etc/planet.ini)")
    try:
        # No collections while it is read: what it makes is kept, and a 10,000-feed file
        # otherwise set off ~300 of them (110 ms of a 320 ms parse; benchmarks/restart_large.py).
        with gc_paused():
            config = load_config(options["config"])
    except ConfigError as exc:
        fail(str(exc))
    state_dir = state_directory(options["state-dir"])
    if state_dir is not None:
        if not os.path.isdir(state_dir):
            where = "--state-dir" if options["state-dir"] else "$STATE_DIRECTORY"
            fail(f"{where} {state_dir}: not a directory")
        config = in_state_dir(config, state_dir)
    try:
        check_snapshot_file(config)
    except ConfigError as exc:
        fail(str(exc))
    if reactor is None:
        from twisted.internet import reactor as installed

        reactor = installed
    from planet.service import build_service

    def load(path: str) -> Config:
        # A reload must place the snapshot where start-up did.
        loaded = load_config(path)
        return in_state_dir(loaded, state_dir) if state_dir is not None else loaded

    memory.tune_malloc()
    try:
        return build_service(config, options["listen"], reactor, load=load)
    except (ValueError, KeyError) as exc:
        # strports raises these for a malformed endpoint description.
        fail(f"--listen {options['listen']!r}: {exc}")
        raise
