"""Fixtures shared by the process-level tests: a loopback feed server, daemons that are
always cleaned up, and a :class:`~process.Kicker` for back-to-back fetch cycles."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from process import Daemon, FeedServer, Kicker


@pytest.fixture
def server() -> Iterator[FeedServer]:
    """A loopback feed server, stopped at the end."""
    srv = FeedServer()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Every Daemon a test appends here is killed at the end, whatever happened."""
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for d in started:
            d.cleanup()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon (without a config yet) that is killed at the end, whatever happened."""
    with Daemon(tmp_path / "planet") as d:
        yield d


@pytest.fixture
def kick() -> Iterator[Callable[..., Kicker]]:
    """Makes a :class:`Kicker` for a daemon; every one is stopped at the end."""
    made: list[Kicker] = []

    def make(daemon: Daemon, every: float = 0.2) -> Kicker:
        made.append(Kicker(daemon, every))
        return made[-1]

    try:
        yield make
    finally:
        for kicker in made:
            kicker.stop()
