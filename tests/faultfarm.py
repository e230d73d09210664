"""The fault farm: loopback servers and documents that misbehave on purpose.

Where an HTTP library cannot misbehave enough (a body trickled a byte a second, a body
that never ends, a reset half-way, a gzip bomb, a broken TLS handshake), :class:`RawServer`
speaks HTTP/1.1 by hand over plain TCP, optionally inside TLS with a self-signed
certificate made at test time (:func:`self_signed_context`). Faults that are only odd
documents (entity bombs, 50,000 entries, bad charsets, dates, ``javascript:`` links) are
plain bytes, to be served by :class:`process.FeedServer`.

:class:`LatencyProbe` and :class:`TreeMemory` watch a daemon while a fault plays out: page
latency from a thread, resident memory of the daemon and every process below it (the
parse workers). Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
import math
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from feeds import Item, atom  # noqa: E402
from proctree import RssSampler, descendants, rss_bytes  # noqa: E402

MIB = 1024 * 1024
#: A fatal TLS alert record: handshake_failure (40), as a server sends when it shares no
#: protocol or cipher with the client.
TLS_HANDSHAKE_FAILURE_ALERT = b"\x15\x03\x03\x00\x02\x02\x28"


# --- a raw HTTP server -----------------------------------------------------------------


class Conn:
    """One accepted connection, handed to a fault to write whatever it likes."""

    def __init__(self, sock: socket.socket, stopping: threading.Event) -> None:
        self.sock = sock
        self._stopping = stopping
        #: Bytes written after the response head.
        self.sent = 0
        #: The peer went away (or the server is stopping) before the fault was done.
        self.gone = False

    def head(self, status: str, headers: Mapping[str, str]) -> bool:
        lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items())]
        lines.append("Connection: close")
        return self._write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def write_head(self, data: bytes) -> bool:
        """Write a response head of one's own, as it is; False as for :meth:`send`."""
        return self._write(data)

    def send(self, data: bytes) -> bool:
        """Write body bytes; False once the peer has gone or the server stops."""
        if not self._write(data):
            return False
        self.sent += len(data)
        return True

    def _write(self, data: bytes) -> bool:
        if self.gone or self._stopping.is_set():
            self.gone = True
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            self.gone = True
            return False
        return True

    def pause(self, seconds: float) -> bool:
        """Sleep; False (stop now) when the server is stopping."""
        return not self._stopping.wait(seconds)

    def reset(self) -> None:
        """Abort with a TCP RST rather than a FIN (SO_LINGER 0, then close)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        self.gone = True


Fault = Callable[[Conn], None]


class RawServer:
    """A threaded loopback TCP server speaking just enough HTTP/1.1 for faults.

    It reads one request head per connection and hands the socket to the route's
    :data:`Fault` (404 for unknown paths), then closes. With ``tls``, every connection is
    wrapped in it first; a client that refuses the handshake is counted in
    :attr:`handshake_errors` and never reaches a route.
    """

    def __init__(
        self,
        routes: Mapping[str, Fault] | None = None,
        tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.routes: dict[str, Fault] = dict(routes or {})
        self.tls = tls
        self.host = host
        self.requests: list[str] = []
        self.connections = 0
        self.handshake_errors: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(64)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        scheme = "https" if self.tls is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{path}"

    def requests_for(self, path: str) -> int:
        with self._lock:
            return self.requests.count(path)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve_and_close, args=(sock,), daemon=True).start()

    def _serve_and_close(self, sock: socket.socket) -> None:
        sock.settimeout(30)
        try:
            self.serve(sock)
        except OSError:
            pass  # the client gave up (its size cap, its timeout): expected here
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def serve(self, sock: socket.socket) -> None:
        """Answer one connection: TLS if configured, one request head, the route's fault."""
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                with self._lock:
                    self.handshake_errors.append(str(exc))
                return
        path = _read_request_path(sock)
        if path is None:
            return
        with self._lock:
            self.requests.append(path)
            fault = self.routes.get(path)
        conn = Conn(sock, self._stopping)
        if fault is None:
            full(b"no such fault\n", "text/plain", "404 Not Found")(conn)
        else:
            fault(conn)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._listener.close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TlsAlertServer(RawServer):
    """Fails every TLS handshake: reads the ClientHello, answers a fatal handshake_failure."""

    def serve(self, sock: socket.socket) -> None:
        hello = sock.recv(16 * 1024)
        with self._lock:
            self.requests.append(f"<ClientHello {len(hello)} bytes>")
        sock.sendall(TLS_HANDSHAKE_FAILURE_ALERT)
        # Let the alert reach the client before the FIN.
        self._stopping.wait(0.2)


def _read_request_path(sock: socket.socket) -> str | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > 64 * 1024:
            return None
        data += chunk
    parts = data.split(b"\r\n", 1)[0].split()
    return parts[1].decode("latin-1") if len(parts) == 3 else None


# --- faults ---------------------------------------------------------------------------


def full(body: bytes, content_type: str, status: str = "200 OK", **headers: str) -> Fault:
    """A well-behaved response (what the TLS server serves, say)."""

    def fault(conn: Conn) -> None:
        if conn.head(
            status, {"Content-Type": content_type, "Content-Length": str(len(body)), **headers}
        ):
            conn.send(body)

    return fault


def trickle(body: bytes, content_type: str, interval: float = 1.0) -> Fault:
    """A whole, honest Content-Length, then one byte every ``interval`` seconds."""

    def fault(conn: Conn) -> None:
        if not conn.head(
            "200 OK", {"Content-Type": content_type, "Content-Length": str(len(body))}
        ):
            return
        for i in range(len(body)):
            if not conn.send(body[i : i + 1]) or not conn.pause(interval):
                return

    return fault


def endless(content_type: str, chunk: int = 64 * 1024) -> Fault:
    """A chunked body of feed-ish filler that never ends, written as fast as it goes."""
    filler = (b"<!-- " + b"x" * chunk + b" -->")[:chunk]
    frame = f"{len(filler):x}\r\n".encode() + filler + b"\r\n"

    def fault(conn: Conn) -> None:
        if conn.head("200 OK", {"Content-Type": content_type, "Transfer-Encoding": "chunked"}):
            while conn.send(frame):
                pass

    return fault


def reset_mid_body(body: bytes, content_type: str, cut: int) -> Fault:
    """Announce all of ``body``, send ``cut`` bytes of it, then reset the connection."""

    def fault(conn: Conn) -> None:
        if not conn.head(
            "200 OK", {"Content-Type": content_type, "Content-Length": str(len(body))}
        ):
            return
        if conn.send(body[:cut]):
            conn.pause(0.2)  # let the client take the first part before the RST
            conn.reset()

    return fault


def gzipped(
    stream: bytes, content_type: str, piece: int = 64 * 1024, coding: str = "gzip"
) -> Fault:
    """``stream`` (already encoded) with ``Content-Encoding: coding``, in ``piece``-sized
    writes."""

    def fault(conn: Conn) -> None:
        headers = {
            "Content-Type": content_type,
            "Content-Encoding": coding,
            "Content-Length": str(len(stream)),
        }
        if not conn.head("200 OK", headers):
            return
        view = memoryview(stream)
        for start in range(0, len(stream), piece):
            if not conn.send(bytes(view[start : start + piece])):
                return

    return fault


def gzip_then_endless(body: bytes, content_type: str, chunk: int = 64 * 1024) -> Fault:
    """A gzip ``body``, then zero bytes without end (chunked): what follows the end of a
    gzip stream is what zlib keeps, growing, unless the client stops reading."""
    frame = f"{chunk:x}\r\n".encode() + b"\x00" * chunk + b"\r\n"

    def fault(conn: Conn) -> None:
        head = {
            "Content-Type": content_type,
            "Content-Encoding": "gzip",
            "Transfer-Encoding": "chunked",
        }
        if not conn.head("200 OK", head):
            return
        stream = gzip.compress(body)
        if conn.send(f"{len(stream):x}\r\n".encode() + stream + b"\r\n"):
            while conn.send(frame):
                pass

    return fault


def raw_head(head: bytes, then: bytes = b"") -> Fault:
    """Exactly ``head`` (status line and headers, as bytes), then ``then``; no more."""

    def fault(conn: Conn) -> None:
        if conn.write_head(head):
            conn.send(then)

    return fault


def header_flood(line: bytes = b"X-Flood: 1\r\n", status: bytes = b"HTTP/1.1 200 OK\r\n") -> Fault:
    """A status line, then ``line`` over and over, never a blank line: the head never ends.
    (Writes whole 64 KiB runs of lines until the client hangs up.)"""
    run = line * (64 * 1024 // len(line))

    def fault(conn: Conn) -> None:
        if conn.write_head(status):
            while conn.send(run):
                pass

    return fault


# --- a gzip bomb ----------------------------------------------------------------------

#: What the bomb expands to first: the start of a feed, so only a size cap can stop it.
BOMB_PREFIX = b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Bomb'


GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"


def _gzip_parts(head: bytes, block: bytes, count: int, tail: bytes = b"") -> tuple[bytes, ...]:
    """The gzip stream of ``head + block * count + tail`` as (start, unit, end), the stream
    being ``start + unit * count + end``, without compressing ``count`` blocks.

    After ``Z_FULL_FLUSH`` the compressor forgets its history, so every block compresses
    to the same bytes. ISIZE is right; the CRC is computed up to 256 MiB of content, and
    left 0 beyond (a client must give up long before it could check it).
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    start = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    unit = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    assert unit == again, "a full flush did not make the blocks repeat"
    end = comp.compress(tail) + comp.flush(zlib.Z_FINISH)
    size = len(head) + count * len(block) + len(tail)
    crc = 0
    if size <= 256 * MIB:
        crc = zlib.crc32(head)
        for _ in range(count):
            crc = zlib.crc32(block, crc)
        crc = zlib.crc32(tail, crc)
    trailer = crc.to_bytes(4, "little") + (size % 2**32).to_bytes(4, "little")
    return GZIP_HEADER + start, unit, end + trailer


def gzip_bomb(
    expanded: int = 10 * 1024 * MIB, block: int = MIB, layers: int = 1
) -> tuple[bytes, int]:
    """A gzip stream of about ``expanded`` bytes (the prefix, then spaces): (stream, size).

    With ``layers`` > 1, that stream gzipped again (``layers`` - 1 times): each layer's
    stream repeats one unit, so the next layer shrinks it ~400 times more. Compressing
    10 GB would take minutes; :func:`_gzip_parts` builds each layer from its repeats.
    """
    count = expanded // block
    start, unit, end = _gzip_parts(BOMB_PREFIX, b" " * block, count)
    for _ in range(layers - 1):
        # Units grouped into blocks of about 1 MiB, a power of two of them.
        group = 1 << max(0, min(count, MIB // len(unit)).bit_length() - 1)
        rest = unit * (count % group) + end
        start, unit, end = _gzip_parts(start, unit * group, count // group, rest)
        count //= group
    return start + unit * count + end, len(BOMB_PREFIX) + (expanded // block) * block


def gunzip_layers(data: bytes, layers: int, limit: int) -> bytes:
    """``data`` with ``layers`` gzip layers undone, each inflated to at most ``limit`` bytes."""
    for _ in range(layers):
        data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, limit)
    return data


# --- TLS ------------------------------------------------------------------------------


def self_signed_context(directory: Path, host: str = "127.0.0.1") -> ssl.SSLContext:
    """A server context whose certificate is right for ``host`` in every way but trust."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


# --- odd documents --------------------------------------------------------------------


def rss(items: str, title: str = "Odd", encoding: str = "utf-8", head: str = "") -> bytes:
    """An RSS 2.0 document around ``items`` (raw XML text), UTF-8 encoded."""
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n{head}'
        f'<rss version="2.0"><channel><title>{title}</title>'
        f"<link>http://odd.example/</link><description>d</description>\n{items}"
        "</channel></rss>\n"
    ).encode()


def entity_bomb(levels: int = 9) -> bytes:
    """Billion laughs: ten references per level, ``10**levels`` "lol"s when expanded."""
    decls = ['<!ENTITY lol0 "lol">']
    decls += [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, levels + 1)]
    top = f"&lol{levels};"
    return rss(
        f"<item><title>Laughs {top}</title><link>http://odd.example/laughs</link>"
        f"<description>{top}</description></item>",
        title=f"Bomb {top}",
        head="<!DOCTYPE rss [\n" + "\n".join(decls) + "\n]>\n",
    )


def external_entity(*paths: Path | str) -> bytes:
    """Entities naming local files (``SYSTEM "file://..."``), used in title and content."""
    decls = [f'<!ENTITY ext{n} SYSTEM "file://{p}">' for n, p in enumerate(paths)]
    refs = "".join(f"&ext{n};" for n in range(len(paths)))
    return rss(
        f"<item><title>Outside {refs}</title><link>http://odd.example/outside</link>"
        f"<description>before {refs} after</description></item>",
        title=f"External {refs}",
        head="<!DOCTYPE rss [\n" + "\n".join(decls) + "\n]>\n",
    )


def many_entries(count: int, newest: dt.datetime) -> bytes:
    """A compact RSS feed of ``count`` items, one minute apart, the newest at ``newest``."""
    parts = []
    for i in range(count):
        when = newest - dt.timedelta(minutes=i)
        parts.append(
            f"<item><title>Many {i}</title><link>http://many.example/{i}</link>"
            f"<pubDate>{when:%a, %d %b %Y %H:%M:%S} GMT</pubDate></item>\n"
        )
    return rss("".join(parts), title="Many")


def invalid_utf8() -> bytes:
    """Declared UTF-8, with bytes that are not UTF-8 in one title."""
    body = rss(
        "<item><title>Clean title</title><link>http://odd.example/clean</link>"
        "<description>fine</description></item>"
        "<item><title>Broken BYTES title</title><link>http://odd.example/broken</link>"
        "<description>broken BYTES body</description></item>",
        title="Invalid UTF-8",
    )
    return body.replace(b"BYTES", b"\xff\xfe\xc3\x28\xa0\xa1")


def utf8_text_feed(title: str) -> bytes:
    """A UTF-8 document with non-ASCII text, to be served under a wrong charset."""
    return rss(
        "<item><title>Caf\u00e9 \u2615 na\u00efve \u00fcber</title>"
        f"<link>http://odd.example/{title.replace(' ', '-')}</link>"
        "<description>\u00e9t\u00e9</description></item>",
        title=title,
    )


def extreme_dates(now: dt.datetime) -> tuple[bytes, list[str], list[str]]:
    """Items dated in 2099 and around 1970: (document, future titles, ancient titles)."""
    future = ["Future post", "Far future post"]
    ancient = ["Epoch post", "Before epoch post"]
    stamps = {
        future[0]: "Thu, 01 Jan 2099 00:00:00 GMT",
        future[1]: "Tue, 31 Dec 2099 23:59:59 GMT",
        ancient[0]: "Thu, 01 Jan 1970 00:00:00 GMT",
        ancient[1]: "Wed, 31 Dec 1969 23:59:59 GMT",
    }
    items = "".join(
        f"<item><title>{t}</title><link>http://dates.example/{n}</link>"
        f"<pubDate>{stamp}</pubDate></item>"
        for n, (t, stamp) in enumerate(stamps.items())
    )
    return rss(items, title="Dates"), future, ancient


#: Spellings of a ``javascript:`` URL that browsers would still run.
JAVASCRIPT_URLS = (
    "javascript:alert(1)",
    "  JaVaScRiPt:alert(2)",
    "&#x6A;avascript:alert(3)",
    "java&#9;script:alert(4)",
    "javascript&#x3A;alert(5)",
)


def javascript_links() -> bytes:
    """Atom entries whose links (and the feed's own link) are ``javascript:`` URLs."""
    items = [
        Item(
            f"Script link {n}",
            # feeds.atom escapes it again: undo that for the character references.
            url,
            dt.datetime(2026, 1, 1, 12, n, tzinfo=dt.timezone.utc),
            content=f'<p><a href="{url}">click</a> <img src="{url}"></p>',
            id=f"urn:script:{n}",
        )
        for n, url in enumerate(JAVASCRIPT_URLS)
    ]
    body = atom("Script Links", "javascript:alert(0)", items)
    # Let the character references reach the XML parser as references.
    return body.replace(b"&amp;#", b"&#")


# --- watching the daemon --------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


class LatencyProbe:
    """GETs ``url`` from a thread every ``interval`` s, recording each answer's latency."""

    def __init__(self, url: str, interval: float = 0.015, timeout: float = 10.0) -> None:
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> LatencyProbe:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=self.timeout) as response:
                    response.read()
                    ok = response.status == 200
            except (OSError, urllib.error.HTTPError) as exc:
                self.failures.append(f"{exc.__class__.__name__}: {exc}")
                ok = False
            if ok:
                self.latencies.append(time.perf_counter() - started)
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(self.timeout + 5)
        return {
            "samples": len(self.latencies),
            "failures": len(self.failures),
            "p50_ms": percentile(self.latencies, 0.50) * 1000,
            "p99_ms": percentile(self.latencies, 0.99) * 1000,
            "max_ms": max(self.latencies, default=math.nan) * 1000,
        }


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class TreeMemory:
    """Resident memory of a process and all its descendants (Linux ``/proc``).

    A phase's peak is taken two ways: :class:`proctree.RssSampler` sums ``VmRSS`` over the
    tree every 50 ms, and each process's own high-water mark (``VmHWM``, reset through
    ``clear_refs`` when the phase starts) catches a spike shorter than that. The reported
    peak is the larger; summing per-process peaks can only overstate it.
    """

    def __init__(self, root: int) -> None:
        self.root = root
        self._sampler: RssSampler | None = None

    def pids(self) -> list[int]:
        return [self.root, *descendants(self.root)]

    def rss(self) -> int:
        """Bytes resident now, the whole tree."""
        return sum(rss_bytes(pid) for pid in self.pids())

    def begin(self) -> int:
        """Start a phase: reset the high-water marks, start sampling; returns :meth:`rss`."""
        for pid in self.pids():
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                pass  # a worker that just exited
        self._sampler = RssSampler(self.root).start()
        return self.rss()

    def end(self) -> int:
        """End a phase: the peak bytes resident since :meth:`begin`."""
        assert self._sampler is not None
        sampled = self._sampler.stop()["peak_total_mb"] * 1e6
        self._sampler = None
        marks = sum(_status_kib(pid, "VmHWM") for pid in self.pids()) * 1024
        return int(max(sampled, marks))


class PeakMemory:
    """This process's resident high-water mark since creation (Linux ``clear_refs``)."""

    def __init__(self) -> None:
        Path("/proc/self/clear_refs").write_text("5")
        self.start = self._kib("VmRSS")

    @staticmethod
    def _kib(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise AssertionError(key)

    def growth(self) -> int:
        return (self._kib("VmHWM") - self.start) * 1024


def has_ipv6_loopback() -> bool:
    """Whether this machine can listen on ::1 (containers without IPv6 cannot)."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True
