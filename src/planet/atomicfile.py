"""Files replaced atomically (temporary file, fsync, rename), never through a symlink's
surprise or a FIFO: the snapshot's and any other file planet writes."""

from __future__ import annotations

import errno
import mmap
import os
import stat
from collections.abc import Callable, Iterable
from typing import IO, Protocol

from attrs import define


class NotARegularFileError(OSError):
    """The snapshot path names something else than a file (a directory, a FIFO, a device):
    it is neither read (a FIFO would block) nor ever replaced."""


class SnapshotFile(Protocol):
    """A new file being written: where a full disk shows up, as ``OSError`` (``ENOSPC``)."""

    def write(self, data: bytes) -> object: ...

    def sync(self) -> None:
        """Make everything written so far durable (flush and fsync)."""

    def close(self) -> None: ...


@define
class DiskFile:
    """A :class:`SnapshotFile` on the local disk, written through a buffer."""

    _file: IO[bytes]

    @classmethod
    def create(cls, path: str) -> DiskFile:
        return cls(open(path, "wb"))  # noqa: SIM115 - closed by write_atomic

    def write(self, data: bytes) -> object:
        return self._file.write(data)

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


#: Creates the temporary file a snapshot is written to; the seam tests fill the disk at.
Opener = Callable[[str], SnapshotFile]


def write_atomic(path: str, data: bytes | Iterable[bytes], opener: Opener = DiskFile.create) -> int:
    """Write ``data`` (bytes or chunks) to ``path`` so that ``path`` is always complete.

    Temporary file, fsync, rename, fsync of the directory. Returns the size written.
    On any error before the rename the temporary file is removed and ``path`` untouched.
    A ``path`` that exists and is not a regular file is never replaced
    (:class:`NotARegularFileError`).
    """
    chunks = [data] if isinstance(data, bytes) else data
    size = 0
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    refuse_non_regular(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        f = opener(tmp)
        try:
            for chunk in chunks:
                f.write(chunk)
                size += len(chunk)
            f.sync()
        finally:
            # Closing flushes too, so it can fail the same way; it still releases the file.
            f.close()
        # Again: something may have been put there while the file was written.
        refuse_non_regular(path)
        os.replace(tmp, path)
    except BaseException:
        # A partial temporary would hold on to the very space a retry needs.
        _remove_quietly(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return size


def refuse_non_regular(path: str) -> None:
    """Raise :class:`NotARegularFileError` if ``path`` exists and is not a regular file (a
    symbolic link counts as what it points to, as the config check has it)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # not there (yet): fine; not reachable: the write itself says why
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise NotARegularFileError(errno.EEXIST, f"{kind}, never replaced", path)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def remove_stale_temporaries(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    prefix = os.path.basename(path) + ".tmp-"
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix):
            _remove_quietly(os.path.join(directory, name))


def _open_regular(path: str) -> int:
    """A descriptor of the file at ``path`` opened for reading; :class:`NotARegularFileError`
    if it is something else (opened without blocking, so a FIFO cannot hang the start)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise NotARegularFileError(errno.EEXIST, kind, path)
    return fd


def read_regular(path: str) -> bytes:
    """The bytes of the file at ``path``; :class:`NotARegularFileError` if it is something else
    (opened without blocking, so a FIFO cannot hang the start)."""
    with os.fdopen(_open_regular(path), "rb") as f:
        return f.read()


def map_regular(path: str) -> bytes | mmap.mmap:
    """The bytes of the file at ``path`` as :func:`read_regular` gives them, but mapped rather
    than copied (an empty file, or one that cannot be mapped, is read): a 430 MB snapshot
    costs no 430 MB buffer and ~0.2 s of copying and page faults at every restart.

    The caller closes an ``mmap`` when done. Planet replaces its files by rename, never in
    place, so the mapped file does not change under the reader; one truncated in place by
    another program while it is read would end the process (SIGBUS).
    """
    fd = _open_regular(path)
    try:
        if os.fstat(fd).st_size:
            try:
                mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):
                pass  # a file system that cannot map it: read below
            else:
                if hasattr(mapped, "madvise"):
                    # Read once, front to back: read ahead far, drop behind.
                    mapped.madvise(mmap.MADV_SEQUENTIAL)
                return mapped
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)
