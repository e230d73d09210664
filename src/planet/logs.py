"""Logging: Venus's ``log_level`` for planet's own messages, and a journald observer.

Run under systemd with ``twistd --logger=planet.logs.journal_observer ...`` (or
``--logfile=-``): one line per event on stdout, without a timestamp, which journald adds.
"""

from __future__ import annotations

import sys

from attrs import define, field
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
    textFileLogObserver,
)

LEVELS = {
    "DEBUG": LogLevel.debug,
    "INFO": LogLevel.info,
    "WARNING": LogLevel.warn,
    "WARN": LogLevel.warn,
    "ERROR": LogLevel.error,
    "CRITICAL": LogLevel.critical,
}


def journal_observer() -> ILogObserver:
    """A zero-argument observer factory for ``twistd --logger``: text lines on stdout."""
    return textFileLogObserver(sys.stdout, timeFormat=None)


@define
class PlanetLogs:
    """Loggers for planet's services, filtered by a level that a config reload can change."""

    level: str = "INFO"
    _predicate: LogLevelFilterPredicate = field(init=False)
    _observer: ILogObserver = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS[self.level])
        self._observer = FilteringLogObserver(globalLogPublisher, [self._predicate])

    def logger(self, namespace: str) -> Logger:
        """A Logger whose events below the level are dropped before reaching any observer."""
        return Logger(namespace=namespace, observer=self._observer)

    def set_level(self, level: str) -> None:
        self.level = level
        # The predicate copies its default into a per-namespace table: reset both.
        self._predicate.defaultLogLevel = LEVELS[level]
        self._predicate.clearLogLevels()
