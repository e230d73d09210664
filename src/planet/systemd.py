"""Tell systemd how the daemon is doing: the ``sd_notify`` protocol, without libsystemd.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET`` (a datagram socket, by path or in
the abstract namespace when it starts with ``@``) and waits for ``READY=1`` before it counts
the service as started. :class:`SdNotifyService`, the last child of the daemon's
``MultiService``, sends it once everything before it has started: the snapshot is loaded
and the web port listens. Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

_log = Logger()

#: Longest a notification may wait for room in systemd's queue. The socket is blocking so a
#: momentarily full queue does not lose READY=1, but the reactor must never hang on it.
SEND_TIMEOUT = 1.0


def sd_notify(state: bytes, environ: Mapping[str, str] = os.environ) -> bool:
    """Send ``state`` (``b"READY=1"``, newline-separated assignments) to ``$NOTIFY_SOCKET``.

    Returns whether it was sent: ``False`` without ``$NOTIFY_SOCKET`` (not run by systemd),
    and ``False`` with one log line when the address is unusable or sending fails. Never
    raises: a notification that cannot be sent must not take the daemon down.
    """
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        # Abstract namespace: the name starts with a NUL byte instead of the "@".
        target = "\0" + address[1:]
    elif address.startswith("/"):
        target = address
    else:
        # As libsystemd: only absolute paths and abstract names are valid.
        _log.warn("NOTIFY_SOCKET={address!r} is not an absolute path or @name", address=address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(SEND_TIMEOUT)
            sock.sendto(state, target)
    except (OSError, ValueError) as exc:
        # ValueError: a NUL byte inside a path address.
        _log.warn(
            "sd_notify to {address} failed: {err}",
            address=address,
            err=exc,
        )
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] = os.environ) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or ``None``.

    ``None`` when systemd's watchdog is off for this process: ``$WATCHDOG_USEC`` unset or
    not a positive integer, or ``$WATCHDOG_PID`` naming another process.
    """
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value / 1_000_000 / 2


def _default_status() -> str:
    return "Serving"


@define(slots=False)
class SdNotifyService(Service):
    """Reports start, reload, stop and liveness to systemd.

    Add it as the *last* child of the top ``MultiService``: children start in order, so
    ``READY=1`` goes out only once every earlier service (snapshot loaded, port listening)
    has started, and children stop in reverse, so ``STOPPING=1`` is the first thing that
    happens at shutdown.

    :param clock: Runs the watchdog pings (the reactor in the daemon).
    :param status: Called at start; its result is sent as ``STATUS=`` (shown by
        ``systemctl status``).
    :param notify: ``sd_notify`` or a test double taking the state bytes.
    :param environ: Where ``WATCHDOG_USEC``/``WATCHDOG_PID`` are read.
    """

    clock: IReactorTime
    status: Callable[[], str] = _default_status
    notify: Callable[[bytes], bool] = sd_notify
    environ: Mapping[str, str] = field(factory=lambda: os.environ)
    _watchdog: LoopingCall | None = None
    _log: Logger = field(factory=Logger)

    def startService(self) -> None:
        super().startService()
        self.ready()
        interval = watchdog_interval(self.environ)
        if interval is not None:
            self._watchdog = LoopingCall(self._ping)
            self._watchdog.clock = self.clock
            self._watchdog.start(interval, now=True).addErrback(
                lambda f: self._log.failure("watchdog loop stopped", f)
            )

    def stopService(self) -> None:
        super().stopService()
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        self._watchdog = None
        self.notify(b"STOPPING=1\nSTATUS=Shutting down")

    def ready(self) -> None:
        """Send ``READY=1`` with the current status (at start, and after a reload)."""
        self.notify(b"READY=1\nSTATUS=" + self._status().encode("utf-8", "replace"))

    def reloading(self) -> None:
        """Send ``RELOADING=1``: a reload started; call :meth:`ready` when it is done."""
        usec = time_monotonic_usec()
        self.notify(b"RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=Reloading" % usec)

    def _status(self) -> str:
        try:
            text = self.status()
        except Exception:
            self._log.failure("status for systemd failed")
            text = "Serving"
        # One line: a newline would start another assignment.
        return " ".join(text.split())

    def _ping(self) -> None:
        self.notify(b"WATCHDOG=1")


def time_monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, as systemd expects in ``MONOTONIC_USEC=``."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
