"""Hand freed memory back to the system (glibc's malloc; a no-op on any other C library),
and keep long-lived values out of the cyclic collector's way (:func:`untrack`).

No Twisted here: the parse workers (:mod:`planet.parseworker`) use it too.

glibc keeps what a long-running, threaded daemon frees:

- each thread that allocates gets an arena of its own, up to 8 per CPU, which keeps what
  was freed in it for that arena's later allocations: the reactor's thread pool (page
  renders, snapshot writes) would keep ten of them;
- ``free`` gives memory back only from the top of a heap: freed feed bodies and page
  buffers below a live allocation stay resident until something reuses them.

So :func:`tune_malloc` caps the arenas at two, and :class:`planet.heap.HeapTrimmer` calls
:func:`trim` (``malloc_trim``: every free page of every arena back to the system) every
second, a fraction of a millisecond when there is nothing to return, a few during a fetch
cycle. With that trim, glibc's own returning of the heap's top at every ``free`` is a cost
with no use: once the heap is compact, each front-page response (~0.6 MB of buffers) grew
and shrank it with ``brk``, 60 page faults and ~140 us of system time per request (-25 %
requests/s). :func:`tune_malloc` also fixes the thresholds glibc otherwise adapts: blocks
under 4 MiB come from the heap, and ``free`` trims its top only past 16 MiB.

``benchmarks/memory.py`` measures them on the fetch-cycle benchmark (1000 feeds, 105 MB of
entry text): with the worker pool of :mod:`planet.workers`, the tree's peak RSS in the cold
cycle is 273 MB without these, 265 MB with them (under ``wrk``: 304 and 282 MB).
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Iterable, Mapping
from typing import Any

#: ``mallopt`` parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

#: What :func:`tune_malloc` sets: name -> (mallopt parameter, value, how the operator would
#: have set it: environment variable, ``GLIBC_TUNABLES`` name). Setting either threshold
#: turns glibc's adaptation of both off.
SETTINGS: dict[str, tuple[int, int, str, str]] = {
    # The daemon's Python threads hold the GIL while they allocate: a second arena already
    # takes what little contention there is.
    "arena_max": (M_ARENA_MAX, 2, "MALLOC_ARENA_MAX", "glibc.malloc.arena_max"),
    # Bodies (up to max_feed_bytes) and pages under it come from the heap, reused in place.
    "mmap_threshold": (
        M_MMAP_THRESHOLD,
        4 * 1024 * 1024,
        "MALLOC_MMAP_THRESHOLD_",
        "glibc.malloc.mmap_threshold",
    ),
    # The heap's top is returned by the trimmer, every second, rather than at each free.
    "trim_threshold": (
        M_TRIM_THRESHOLD,
        16 * 1024 * 1024,
        "MALLOC_TRIM_THRESHOLD_",
        "glibc.malloc.trim_threshold",
    ),
}


@functools.cache
def glibc() -> Any | None:
    """The process's C library if it is glibc (it has ``mallopt`` and ``malloc_trim``)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not all(hasattr(libc, name) for name in ("gnu_get_libc_version", "mallopt", "malloc_trim")):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return libc


def chosen_by_operator(variable: str, tunable: str, environ: Mapping[str, str]) -> bool:
    """Whether the environment sets this malloc parameter already."""
    return variable in environ or tunable in environ.get("GLIBC_TUNABLES", "")


def tune_malloc(environ: Mapping[str, str] = os.environ, libc: Any = None) -> list[str]:
    """Apply :data:`SETTINGS` (call it before the threads start); the names applied.

    A parameter the operator set in the environment is left alone.
    """
    libc = libc if libc is not None else glibc()
    if libc is None:
        return []
    applied = []
    for name, (param, value, variable, tunable) in SETTINGS.items():
        if not chosen_by_operator(variable, tunable, environ) and libc.mallopt(param, value):
            applied.append(name)
    return applied


def trim(libc: Any = None) -> bool:
    """Give every free page of every arena back to the system; True if any was."""
    libc = libc if libc is not None else glibc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))


@functools.cache
def _gc_untrack() -> Any | None:
    """CPython's ``PyObject_GC_UnTrack``, or None where there is none (PyPy)."""
    api = getattr(ctypes, "pythonapi", None)
    function = getattr(api, "PyObject_GC_UnTrack", None)
    if function is None:
        return None
    function.argtypes = [ctypes.py_object]
    function.restype = None
    return function


def untrack(objects: Iterable[object]) -> None:
    """Take ``objects`` out of the cyclic garbage collector's lists.

    Only for objects that can never be in a reference cycle: instances whose fields hold
    strings, numbers, dates, booleans or ``None`` and are never reassigned (the frozen
    ``Entry`` and ``FeedState``). Reference counting still frees them; the collector just no
    longer examines them at every full pass (see :mod:`planet.heap`). Where the interpreter
    has no such call, nothing is done.
    """
    function = _gc_untrack()
    if function is not None:
        for obj in objects:
            function(obj)
