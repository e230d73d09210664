"""``twistd planet``: command-line options and the service maker."""

from __future__ import annotations

import sys
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from planet.config import ConfigError, load_config

DEFAULT_LISTEN = "tcp:8080:interface=127.0.0.1"


class Options(usage.Options):
    """Options of ``twistd planet``."""

    synopsis = "--config FILE [--listen ENDPOINT]"
    longdesc = (
        "Run the planet feed aggregator: fetch the feeds of a Planet-style INI config and "
        "serve their merged river as HTML and Atom."
    )
    optParameters = [
        ["config", "c", None, "Planet INI configuration file (required)."],
        ["listen", "l", DEFAULT_LISTEN, "Twisted endpoint string for the web view."],
    ]


def fail(message: str) -> None:
    """One clear error line on stderr, then exit non-zero before anything starts."""
    print(f"planet: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def makeService(options: Options, reactor: Any = None) -> IService:
    """Load the config (exiting on any error in it) and build the daemon's service."""
    # Validation here rather than in postOptions: twistd answers a UsageError with its
    # whole help text, and an operator needs the one line that names the problem.
    if not options["config"]:
        fail("--config FILE is required (a Planet INI file, e.g. etc/planet.ini)")
    try:
        config = load_config(options["config"])
    except ConfigError as exc:
        fail(str(exc))
    if reactor is None:
        from twisted.internet import reactor as installed

        reactor = installed
    from planet.service import build_service

    try:
        return build_service(config, options["listen"], reactor)
    except (ValueError, KeyError) as exc:
        # strports raises these for a malformed endpoint description.
        fail(f"--listen {options['listen']!r}: {exc}")
        raise
