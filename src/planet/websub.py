"""WebSub (W3C Recommendation, 2018), the subscriber's pure parts: discovery, signatures,
subscription records and lease arithmetic.

No Twisted and no I/O here: :mod:`planet.websubservice` does the talking. Discovery
follows section 4: the HTTP ``Link`` headers first, then the document (an Atom feed's
``<link>``, an RSS feed's ``<atom:link>``); the topic is the ``rel="self"`` URL.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from urllib.parse import urljoin

from attrs import evolve, frozen

__all__ = [
    "STATES",
    "Discovered",
    "WebSubRecord",
    "check_signature",
    "discover",
    "new_record",
    "renew_at",
    "sign",
]

#: The states of a subscription, as ``/feeds.json`` and ``/metrics`` name them.
STATES = ("off", "pending", "subscribed", "denied", "failing")
#: Share of the lease after which a subscription is renewed.
RENEW_AT = 0.9
#: ``X-Hub-Signature`` methods accepted (section 8: sha1, sha256, sha384, sha512).
ALGORITHMS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
# Links sit in the feed's head: the document is searched up to its first entry, and at
# most this far (a hub link after 64 KiB of channel is not worth a scan of 15 MB).
_HEAD_LIMIT = 64 * 1024
_ENTRY_START = re.compile(rb"<(?:[\w.-]+:)?(?:entry|item)[\s>/]")
_LINK_TAG = re.compile(rb"<(?:[\w.-]+:)?link\b([^>]*)>", re.IGNORECASE)
_ATTRIBUTE = re.compile(rb"""([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
# RFC 8288: <uri>; param; param=value; param="quoted", ...
_LINK_VALUE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*(?:=\s*(?:\"[^\"]*\"|[^;,]*))?)*)")
_LINK_PARAM = re.compile(r";\s*([\w*-]+)\s*(?:=\s*(?:\"([^\"]*)\"|([^;,\s]*)))?")


@frozen
class Discovered:
    """A feed's hub and topic, as discovery found them."""

    hub: str
    topic: str


def _rels(value: str) -> set[str]:
    return {r.lower() for r in value.split()}


def links_from_headers(values: Iterable[str]) -> list[tuple[str, set[str]]]:
    """``(url, rels)`` of every link in ``Link`` header values (RFC 8288), in order."""
    found = []
    for value in values:
        for match in _LINK_VALUE.finditer(value):
            rels: set[str] = set()
            for param in _LINK_PARAM.finditer(match.group(2)):
                if param.group(1).lower() == "rel":
                    rels |= _rels(param.group(2) or param.group(3) or "")
            found.append((match.group(1).strip(), rels))
    return found


def links_from_document(body: bytes) -> list[tuple[str, set[str]]]:
    """``(url, rels)`` of the feed-level ``<link>`` elements (Atom, RSS ``atom:link``)."""
    head = body[:_HEAD_LIMIT]
    entry = _ENTRY_START.search(head)
    if entry is not None:
        head = head[: entry.start()]
    found = []
    for tag in _LINK_TAG.finditer(head):
        attributes = {}
        for attribute in _ATTRIBUTE.finditer(tag.group(1)):
            name = attribute.group(1).decode("ascii", "replace").lower()
            raw = attribute.group(2) if attribute.group(2) is not None else attribute.group(3)
            attributes[name] = html.unescape(raw.decode("utf-8", "replace"))
        href, rel = attributes.get("href"), attributes.get("rel")
        if href and rel:
            found.append((href.strip(), _rels(rel)))
    return found


def _first(links: list[tuple[str, set[str]]], rel: str) -> str | None:
    return next((url for url, rels in links if rel in rels and url), None)


def discover(link_headers: Iterable[str], body: bytes | None, base: str) -> Discovered | None:
    """The hub and topic of a feed fetched from ``base`` (its final URL), or None.

    The headers decide when they name a hub (section 4: "the subscriber MUST check the
    headers first"); else the document does. Without ``rel="self"`` the topic is ``base``.
    Relative URLs are resolved against ``base``.
    """
    for links in (links_from_headers(link_headers), links_from_document(body or b"")):
        hub = _first(links, "hub")
        if hub is not None:
            topic = _first(links, "self") or base
            return Discovered(hub=urljoin(base, hub), topic=urljoin(base, topic))
    return None


def sign(secret: str, body: bytes, method: str = "sha256") -> str:
    """The ``X-Hub-Signature`` value a hub sends for ``body`` (the tests' hub uses it)."""
    digest = hmac.new(secret.encode("utf-8"), body, ALGORITHMS[method]).hexdigest()
    return f"{method}={digest}"


def check_signature(header: str | None, secret: str, body: bytes) -> bool:
    """Whether ``header`` (``X-Hub-Signature``) signs ``body`` with ``secret``.

    Compared in constant time; a missing header, an unknown method or a malformed value
    is a wrong signature.
    """
    if not header:
        return False
    method, _, signature = header.strip().partition("=")
    algorithm = ALGORITHMS.get(method.strip().lower())
    if algorithm is None:
        return False
    expected = hmac.new(secret.encode("utf-8"), body, algorithm).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


@frozen
class WebSubRecord:
    """One subscription with a hub (persisted in the snapshot; the secret is never shown).

    ``id`` is the opaque last path segment of the callback; ``pending`` names the request
    (``subscribe`` or ``unsubscribe``) the hub has yet to verify; ``errors`` counts the
    failed requests in a row (the fetch backoff spaces the retries).
    """

    id: str
    feed_url: str
    topic: str
    hub: str
    callback: str
    secret: str = ""
    state: str = "pending"
    pending: str | None = "subscribe"
    lease_seconds: int = 864000
    requested_at: datetime | None = None
    verified_at: datetime | None = None
    expires: datetime | None = None
    last_push: datetime | None = None
    next_attempt: datetime | None = None
    errors: int = 0
    reason: str | None = None

    def __repr__(self) -> str:
        # The secret never reaches a log line, even through a repr.
        return f"WebSubRecord(id={self.id!r}, feed_url={self.feed_url!r}, state={self.state!r})"


def new_record(feed_url: str, found: Discovered, callback_base: str, lease: int) -> WebSubRecord:
    """A fresh subscription: a random id (the callback's last segment) and a random secret."""
    sub_id = secrets.token_urlsafe(18)
    return WebSubRecord(
        id=sub_id,
        feed_url=feed_url,
        topic=found.topic,
        hub=found.hub,
        callback=callback_url(callback_base, sub_id),
        secret=secrets.token_hex(32),
        lease_seconds=lease,
    )


def callback_url(base: str, sub_id: str) -> str:
    """``<websub_callback>websub/<id>``; the base gains its final ``/`` if it lacks one."""
    return f"{base if base.endswith('/') else base + '/'}websub/{sub_id}"


def renew_at(record: WebSubRecord) -> datetime | None:
    """When a verified subscription is renewed: at 90 % of its lease."""
    if record.verified_at is None or record.expires is None:
        return None
    lease = (record.expires - record.verified_at).total_seconds()
    return record.verified_at + timedelta(seconds=lease * RENEW_AT)


def verified(record: WebSubRecord, now: datetime, lease: int | None) -> WebSubRecord:
    """``record`` once the hub verified a subscribe: the lease starts now."""
    seconds = lease if lease is not None and lease > 0 else record.lease_seconds
    return evolve(
        record,
        state="subscribed",
        pending=None,
        verified_at=now,
        expires=now + timedelta(seconds=seconds),
        errors=0,
        reason=None,
        next_attempt=None,
    )


def intent_matches(record: WebSubRecord, mode: str, topic: str) -> bool:
    """Whether a verification of intent is for a request we made (section 5.3)."""
    return record.pending is not None and record.pending == mode and record.topic == topic


@frozen
class HubAnswer:
    """What a verification request (or denial) gets: the status, the body, the record after
    it (None: unchanged, or dropped when the status is 200) and what to log."""

    code: int
    body: bytes
    record: WebSubRecord | None = None
    news: str = ""


def answer_hub(
    record: WebSubRecord, args: Mapping[str, str], now: datetime, retry_denied: float
) -> HubAnswer:
    """Section 5.3 (verification of intent) and 5.2 (denial) for ``record``'s callback.

    The challenge is echoed only for the request pending, for its exact topic; a denial
    is recorded with its reason and asked again after ``retry_denied`` seconds.
    """
    mode, topic = args.get("hub.mode", ""), args.get("hub.topic", "")
    if mode == "denied":
        if record.topic != topic:
            return HubAnswer(404, b"unknown topic\n")
        reason = (args.get("hub.reason") or "no reason given")[:200]
        again = now + timedelta(seconds=retry_denied)
        denied = evolve(record, state="denied", pending=None, reason=reason, next_attempt=again)
        return HubAnswer(200, b"", denied, f"subscription denied: {reason}")
    challenge = args.get("hub.challenge", "")
    if not challenge or not intent_matches(record, mode, topic):
        return HubAnswer(404, b"no such request\n")
    if mode == "unsubscribe":
        return HubAnswer(200, challenge.encode("utf-8"), None, "subscription ended")
    lease = _int(args.get("hub.lease_seconds"))
    return HubAnswer(200, challenge.encode("utf-8"), verified(record, now, lease), "verified")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def live(records: Iterable[WebSubRecord]) -> Iterator[WebSubRecord]:
    """The subscriptions not being ended."""
    return (r for r in records if r.pending != "unsubscribe")


def status_rows(records: Iterable[WebSubRecord]) -> dict[str, dict[str, str | None]]:
    """The status page's WebSub columns, per feed URL (the secret is not among them)."""
    return {
        r.feed_url: {
            "websub": r.state,
            "websub_hub": r.hub,
            "websub_expires": _iso(r.expires),
            "last_push": _iso(r.last_push),
        }
        for r in live(records)
    }


def _iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when is not None else None
