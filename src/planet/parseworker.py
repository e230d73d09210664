"""The program a parse worker runs (see :class:`planet.workers.ProcessParser`).

``python -c STARTER NICENESS PACKAGE_ROOT``: tasks ``(function, args)`` come in on stdin,
``(ok, result or exception, traceback text)`` goes out on fd 3, each frame an 8-byte
big-endian length and a pickle; the first frame out is empty and says the worker is ready
(the parser is imported), which starts the first task's time limit. stdout and stderr stay
the daemon's, so a stray print cannot break a frame. The worker exits at the end of its
input.

This module imports only what parsing needs: not Twisted (~6 MB more in every worker).

A worker that has had no task for :data:`IDLE_SECONDS` hands the memory its last parse
freed back to the system (:func:`planet.memory.trim`): a parse's working set is several MB,
and glibc would keep it for the worker's whole life.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import sys
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

from planet import memory

#: The header of every frame in both directions.
HEADER = struct.Struct("!Q")

#: Seconds without a task after which a worker trims its heap.
IDLE_SECONDS = 1.0

#: What the daemon passes to ``python -c``: makes this package importable, then runs
#: :func:`main`. Kept tiny: everything else is here, where linters and tests see it.
STARTER = "import sys; sys.path.insert(0, sys.argv[2]); import planet.parseworker as w; w.main()"


# The tasks the daemon sends, by reference: the daemon itself loads the parser (feedparser
# and the rest, ~11 MB) only if it ever parses in process (tests, the inline parser); a
# worker has it loaded before its first task.
def parse_feed(*args: Any, **kwargs: Any) -> Any:
    """:func:`planet.parse.parse_feed`."""
    from planet.parse import parse_feed as parse

    return parse(*args, **kwargs)


def resanitize_entries(*args: Any, **kwargs: Any) -> Any:
    """:func:`planet.parse.resanitize_entries`."""
    from planet.parse import resanitize_entries as resanitize

    return resanitize(*args, **kwargs)


def serve(tasks: BinaryIO, results: BinaryIO, idle: Callable[[], object] | None = None) -> None:
    """Answer every task read from ``tasks`` on ``results``, until ``tasks`` ends.

    ``idle`` (if given; ``tasks`` must then be a pipe or socket) runs each time no task came
    for :data:`IDLE_SECONDS`.
    """
    while True:
        # The daemon sends a worker its next task only after its answer: nothing is
        # buffered here when select looks at the pipe.
        if idle is not None and not select.select([tasks], [], [], IDLE_SECONDS)[0]:
            idle()
        head = tasks.read(HEADER.size)
        if len(head) < HEADER.size:
            return
        task = tasks.read(HEADER.unpack(head)[0])
        try:
            function, args = pickle.loads(task)  # noqa: S301 - the daemon that spawned us
            del task
            outcome = (True, function(*args), "")
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the daemon
            outcome = (False, exc, traceback.format_exc())
        try:
            data = pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - an unpicklable result or exception
            error = RuntimeError(f"unpicklable outcome: {exc!r}")
            data = pickle.dumps((False, error, traceback.format_exc()))
        del outcome
        results.write(HEADER.pack(len(data)))
        results.write(data)
        results.flush()
        del data


def main() -> None:
    """A worker's life: lower its priority, load the parser, serve stdin until it ends."""
    # Ctrl-C in a terminal reaches the whole process group: it is for the daemon, which
    # then stops us by closing our input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(int(sys.argv[1]))
    import planet.parse  # noqa: F401 - loaded once, before the first task

    with os.fdopen(3, "wb") as results:
        # An empty frame: ready. A task's time limit starts from here, not from the spawn.
        results.write(HEADER.pack(0))
        results.flush()
        serve(sys.stdin.buffer, results, idle=memory.trim)
