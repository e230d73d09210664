"""A WebSub hub written for the tests, following the W3C Recommendation (hub role, the parts
a subscriber meets): subscription requests (5.1), verification of intent with a random
challenge (5.3) and signed content distribution (7, 8).

It speaks through whatever treq-like ``client`` it is given: a :class:`treq.testing.StubTreq`
over the planet's web resource in unit tests, a real client over loopback TCP otherwise.
Also: :class:`Hosts`, one in-memory resource answering for several host names (feeds and
hubs behind one StubTreq), with 307 redirects for named hosts.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from attrs import define
from twisted.internet.defer import Deferred, gatherResults
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from planet.websub import sign


@define
class HubSubscription:
    callback: str
    topic: str
    secret: str | None
    lease: int


@define
class Verification:
    mode: str
    callback: str
    code: int
    echoed: bool


class Hub(Resource):
    """The hub: ``POST /`` takes (un)subscription requests, answers 202 and verifies.

    :attr:`requests` holds every form received; :attr:`verifications` every verification
    made; :attr:`subscriptions` the verified ones by (callback, topic). ``answer`` replaces
    the 202 (an error to answer with); ``lease`` replaces the lease asked for.
    """

    isLeaf = True

    def __init__(self, client: Any = None, lease: int | None = None) -> None:
        super().__init__()
        self.client = client
        self.lease = lease
        self.answer = 202
        self.requests: list[dict[str, str]] = []
        self.verifications: list[Verification] = []
        self.subscriptions: dict[tuple[str, str], HubSubscription] = {}
        self.running: list[Deferred[None]] = []

    def render_POST(self, request: Request) -> bytes:
        form = {k.decode(): v[0].decode() for k, v in (request.args or {}).items() if v}
        self.requests.append(form)
        if self.answer != 202:
            request.setResponseCode(self.answer)
            return b"no"
        mode, topic, callback = (form.get(k) for k in ("hub.mode", "hub.topic", "hub.callback"))
        if mode not in ("subscribe", "unsubscribe") or not topic or not callback:
            request.setResponseCode(400)
            return b"bad request"
        request.setResponseCode(202)
        self.running.append(Deferred.fromCoroutine(self._verify(form)))
        return b""

    async def _verify(self, form: dict[str, str]) -> None:
        """5.3: GET the callback with a random challenge; verified when echoed by a 2xx."""
        mode, topic, callback = form["hub.mode"], form["hub.topic"], form["hub.callback"]
        lease = self.lease or int(form.get("hub.lease_seconds") or 86400)
        challenge = secrets.token_urlsafe(24)
        query = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            query["hub.lease_seconds"] = str(lease)
        response = await self.client.get(
            callback + ("&" if "?" in callback else "?") + urlencode(query)
        )
        body = await response.content()
        echoed = 200 <= response.code < 300 and body == challenge.encode()
        self.verifications.append(Verification(mode, callback, response.code, echoed))
        if not echoed:
            return
        if mode == "subscribe":
            secret = form.get("hub.secret")
            self.subscriptions[(callback, topic)] = HubSubscription(callback, topic, secret, lease)
        else:
            self.subscriptions.pop((callback, topic), None)

    def deny(self, callback: str, topic: str, reason: str) -> Deferred[int]:
        """5.2: tell the subscriber its subscription is denied."""
        query = urlencode({"hub.mode": "denied", "hub.topic": topic, "hub.reason": reason})
        d = self.client.get(callback + "?" + query)
        return d.addCallback(lambda r: r.code)

    def verify_unasked(self, callback: str, topic: str, mode: str = "subscribe") -> Deferred[Any]:
        """A verification of intent for a request the subscriber never made."""
        challenge = secrets.token_urlsafe(24)
        query = urlencode({"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge})
        return self.client.get(callback + "?" + query)

    def publish(
        self,
        topic: str,
        body: bytes,
        content_type: str = "application/atom+xml",
        method: str = "sha256",
        signature: Callable[[str | None, bytes], str | None] | None = None,
        hub_url: str = "http://hub.example/",
    ) -> Deferred[list[int]]:
        """7: POST ``body`` to every verified subscriber of ``topic``, signed (8) with its
        secret by ``method``, or with ``signature(secret, body)`` (None: unsigned)."""
        sends = []
        for sub in list(self.subscriptions.values()):
            if sub.topic != topic:
                continue
            headers = {
                "Content-Type": content_type,
                "Link": f'<{hub_url}>; rel="hub", <{topic}>; rel="self"',
            }
            value = (
                signature(sub.secret, body)
                if signature is not None
                else (sign(sub.secret, body, method) if sub.secret else None)
            )
            if value is not None:
                headers["X-Hub-Signature"] = value
            d = self.client.post(sub.callback, data=body, headers=headers)
            sends.append(d.addCallback(_drain))
        return gatherResults(sends)


def _drain(response: Any) -> Deferred[int]:
    return response.content().addCallback(lambda _: response.code)


class Hosts(Resource):
    """One in-memory resource for several hosts: ``sites`` by Host header (without a port),
    ``moved`` hosts answer 307 to the same path on another base URL, else ``default``."""

    isLeaf = True

    def __init__(self, default: IResource, **sites: IResource) -> None:
        super().__init__()
        self.default = default
        self.sites = {host.replace("_", "."): site for host, site in sites.items()}
        self.moved: dict[str, str] = {}

    def render(self, request: Request) -> Any:
        host = (request.getHeader("host") or "").split(":")[0].lower()
        if host in self.moved:
            request.setResponseCode(307)
            request.setHeader("location", self.moved[host] + request.uri.decode().lstrip("/"))
            return b""
        return self.sites.get(host, self.default).render(request)
