"""Reading a response body within a byte limit, content codings undone a slice at a time.

:func:`read_body` is the only way planet reads a body: the bytes received and every
decoded layer count against the limit, so a gzip bomb costs no more than the limit.
"""

from __future__ import annotations

import typing
import zlib
from typing import Any, cast

from attrs import define
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.client import GzipDecoder, ResponseDone
from twisted.web.iweb import IResponse

__all__ = [
    "MAX_CONTENT_CODINGS",
    "BadEncodingError",
    "BodyTooLargeError",
    "ContentCodingError",
    "read_body",
]


class BodyTooLargeError(Exception):
    """The response body passed ``max_feed_bytes``; the download was aborted."""


class BadEncodingError(Exception):
    """The body's ``Content-Encoding`` stream (gzip, deflate) is corrupt."""

    def __init__(self, coding: str, detail: str) -> None:
        super().__init__(coding, detail)
        self.coding = coding
        self.detail = detail

    def __str__(self) -> str:
        return f"invalid {self.coding} body: {self.detail}"


class ContentCodingError(Exception):
    """A ``Content-Encoding`` planet refuses to decode; str() is the feed's reason."""


#: Most bytes decoded in one reactor turn, all layers together (~5-10 ms of CPU).
_INFLATE_SLICE = 512 * 1024

#: Content codings undone in one response, at most: ``gzip, gzip`` happens (a server that
#: compresses what is stored compressed); a third layer serves only to multiply a bomb.
MAX_CONTENT_CODINGS = 2


class _Inflater(typing.Protocol):
    """What :class:`_CappedBody` needs of a decoder: :class:`zlib.Decompress`'s bounded API."""

    @property
    def unconsumed_tail(self) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, /, max_length: int = 0) -> bytes: ...


class _Deflate:
    """``Content-Encoding: deflate``: zlib-wrapped, as RFC 9110 says, or raw, as some
    servers send it (and browsers accept); the first byte tells which."""

    def __init__(self) -> None:
        self._inflate: Any = None

    @property
    def unconsumed_tail(self) -> bytes:
        return b"" if self._inflate is None else cast(bytes, self._inflate.unconsumed_tail)

    @property
    def eof(self) -> bool:
        return self._inflate is not None and bool(self._inflate.eof)

    def decompress(self, data: bytes, /, max_length: int = 0) -> bytes:
        if self._inflate is None:
            if not data:
                return b""
            # A zlib header's first byte: compression method 8, window at most 32 KiB.
            wrapped = data[0] & 0x0F == 8 and data[0] >> 4 <= 7
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return cast(bytes, self._inflate.decompress(data, max_length))


def _decoder(coding: str) -> _Inflater | None:
    """A decoder for one content coding, or None for one planet does not decode."""
    if coding in ("gzip", "x-gzip"):
        # Twisted's settings: a gzip header and trailer.
        return cast(_Inflater, zlib.decompressobj(16 + zlib.MAX_WBITS))
    if coding == "deflate":
        return _Deflate()
    return None


@define
class _Layer:
    """One content coding being undone: its input not decoded yet, and its output so far."""

    name: str
    decoder: _Inflater
    pending: bytes = b""
    #: Bytes this layer has put out (every layer's count is held to the body's limit).
    produced: int = 0
    #: Its last call filled the room it was given: more output may be waiting inside it.
    full: bool = False

    def busy(self) -> bool:
        return bool(self.pending) or self.full


class _CappedBody(Protocol):
    """Collects a response body, dropping the connection once it passes ``limit`` bytes.

    With ``layers`` (the content codings to undo, the one applied last first), the bytes
    received and every layer's decoded output each count against ``limit``, and decoding
    goes a slice at a time: at most ``_INFLATE_SLICE`` decoded bytes per reactor turn, all
    layers together, with the transport paused while any layer has input or output left.
    64 KiB of a gzip bomb holds 64 MiB, and a gzip of that bomb ~64 GiB: decoded at once, a
    few hundred bytes would cost that much memory and block the reactor for seconds. A
    layer's output waits as the next layer's input only until that layer has taken it, so
    what is held besides the body is about a slice per layer.
    """

    def __init__(
        self,
        limit: int,
        finished: Deferred[bytes],
        clock: IReactorTime,
        layers: list[_Layer] | None = None,
        refusal: Exception | None = None,
    ) -> None:
        self._limit = limit
        self._finished: Deferred[bytes] | None = finished
        self._clock = clock
        self._layers = layers or []
        self._chunks: list[bytes] = []
        #: Bytes received, and (without layers) the body's size.
        self._size = 0
        #: Whether the transport is paused (or a slice is scheduled) for the layers.
        self._paused = False
        #: The end of the body, when it came while the layers still had work.
        self._ended: Failure | None = None
        #: Fail the body with this as soon as it is connected, reading none of it.
        self._refusal = refusal

    def connectionMade(self) -> None:
        # Before any data: Twisted may deliver a whole buffered body within deliverBody.
        if self._refusal is not None:
            self._fail(self._refusal)

    def abort(self) -> None:
        self._finished = None
        if self.transport is not None:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._finished is None:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._fail(BodyTooLargeError(self._size))
            return
        if not self._layers:
            self._chunks.append(data)
            return
        first = self._layers[0]
        if first.decoder.eof:
            return  # bytes after the end of the outer stream: ignored, not kept
        # Usually empty: more data only comes before a pause takes effect.
        first.pending += data
        if not self._paused:
            self._decode_slice()

    def _decode_slice(self) -> None:
        if self._finished is None:
            return
        room = _INFLATE_SLICE
        while room > 0:
            # The innermost layer with work first: a layer's output is taken by the next
            # one before the layer is asked for more.
            index = next(
                (i for i in range(len(self._layers) - 1, -1, -1) if self._layers[i].busy()), None
            )
            if index is None:
                break
            layer = self._layers[index]
            allowed = min(self._limit - layer.produced + 1, room)
            before = layer.pending
            try:
                piece = layer.decoder.decompress(layer.pending, allowed)
            except zlib.error as exc:
                self._fail(BadEncodingError(layer.name, str(exc)))
                return
            # After the end of its stream a decoder keeps (and grows) what follows as
            # unused_data: it is dropped instead.
            layer.pending = b"" if layer.decoder.eof else layer.decoder.unconsumed_tail
            layer.full = len(piece) == allowed and not layer.decoder.eof
            if not piece and not layer.full and layer.pending == before and before:
                # zlib always takes input when it has room to write: never loop on none.
                self._fail(BadEncodingError(layer.name, "the decoder made no progress"))
                return
            layer.produced += len(piece)
            if layer.produced > self._limit:
                self._fail(BodyTooLargeError(layer.produced))
                return
            room -= len(piece)
            if index + 1 < len(self._layers):
                inner = self._layers[index + 1]
                if not inner.decoder.eof:
                    inner.pending += piece
            else:
                self._chunks.append(piece)
        transport = cast(IPushProducer | None, self.transport)
        if any(layer.busy() for layer in self._layers):
            if not self._paused and self._ended is None and transport is not None:
                transport.pauseProducing()
            self._paused = True
            self._clock.callLater(0, self._decode_slice)
            return
        if self._paused:
            self._paused = False
            if self._ended is None and transport is not None:
                transport.resumeProducing()
        if self._ended is not None:
            self._end(self._ended)

    def _fail(self, exc: Exception) -> None:
        finished = self._finished
        self.abort()
        if finished is not None:
            finished.errback(exc)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._finished is not None and self._paused:
            self._ended = reason  # the slices still to decode end the body
            return
        self._end(reason)

    def _end(self, reason: Failure) -> None:
        # Every layer has taken all its input and had room left on its last call: nothing
        # is held back inside a decoder. A stream cut short is kept as far as it went.
        finished, self._finished = self._finished, None
        if finished is None:
            return
        if reason.check(ResponseDone, http.PotentialDataLoss):
            finished.callback(b"".join(self._chunks))
        else:
            finished.errback(reason)


def _as_sent(response: Any) -> tuple[IResponse, list[str]]:
    """The response as the server sent it, and its content codings in the order applied.

    treq's HTTPClient always wraps its agent in a ContentDecoderAgent, which wraps the
    response in a GzipDecoder per trailing ``gzip`` of ``Content-Encoding`` (and takes them
    off the header): each would inflate a network chunk without any limit, layer upon
    layer. Their ``original`` (documented) is unwrapped here and nothing is read through
    them; the body is decoded by :class:`_CappedBody` instead.
    """
    gzips = 0
    while True:
        if isinstance(response, GzipDecoder):
            gzips += 1
        inner = getattr(response, "original", None)
        if inner is None:
            break
        response = inner
    declared = [
        token.strip().decode("latin-1").lower()
        for value in response.headers.getRawHeaders(b"content-encoding", [])
        for token in value.split(b",")
    ]
    return response, declared + ["gzip"] * gzips


def _layers_for(codings: list[str]) -> list[_Layer]:
    """The layers to undo, the last applied first; an unknown coding and what lies under
    it are left as they are (the parser gets those bytes, as from Twisted's decoder)."""
    layers = []
    for name in reversed(codings):
        decoder = _decoder(name)
        if decoder is None:
            break
        layers.append(_Layer("gzip" if name == "x-gzip" else name, decoder))
    return layers


def read_body(
    response: Any, limit: int, clock: IReactorTime, discard: bool = False
) -> Deferred[bytes]:
    """The body, decoded, within ``limit``; with ``discard``, read (undecoded) only to free
    the connection, and b"" whatever happens, unless cancelled."""
    sent, codings = _as_sent(response)
    codings = [c for c in codings if c and c != "identity"]
    refusal = None
    if not discard and len(codings) > MAX_CONTENT_CODINGS:
        refusal = ContentCodingError(
            f"too many content codings ({len(codings)}: {', '.join(codings)[:200]}); "
            f"at most {MAX_CONTENT_CODINGS} are decoded"
        )
    if sent.length == 0:
        return fail(refusal) if refusal is not None else succeed(b"")
    protocol: _CappedBody | None = None

    def cancel(_: Deferred[bytes]) -> None:
        if protocol is not None:
            protocol.abort()

    finished: Deferred[bytes] = Deferred(cancel)
    layers = [] if discard or refusal is not None else _layers_for(codings)
    protocol = _CappedBody(limit, finished, clock, layers, refusal)
    sent.deliverBody(protocol)
    if discard:
        finished.addErrback(_ignore_unless_cancelled)
    return finished


def _ignore_unless_cancelled(failure: Failure) -> bytes | Failure:
    if failure.check(CancelledError):
        return failure
    return b""
