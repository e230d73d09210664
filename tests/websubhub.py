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


class ThreadedHub:
    """The same hub for process-level tests and benchmarks: a stdlib threaded HTTP server
    on 127.0.0.1 that is a hub at ``/hub`` (verifying from a thread, with urllib) and
    serves ``feed`` at ``/feed`` with a ``Link`` header naming the hub."""

    def __init__(self, feed: bytes = b"") -> None:
        import http.server
        import threading

        self.feed = feed
        self.requests: list[dict[str, str]] = []
        self.verified: dict[tuple[str, str], str | None] = {}
        self.failed_verifications: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        hub = self

        class _Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = hub.feed
                self.send_response(200)
                self.send_header("Content-Type", "application/atom+xml")
                self.send_header("Link", f'<{hub.url("/hub")}>; rel="hub"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                from urllib.parse import parse_qsl

                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                with hub._lock:
                    hub.requests.append(form)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                threading.Thread(target=hub._verify, args=(form,), daemon=True).start()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _verify(self, form: dict[str, str]) -> None:
        import urllib.error
        import urllib.request

        mode, topic, callback = form["hub.mode"], form["hub.topic"], form["hub.callback"]
        challenge = secrets.token_urlsafe(24)
        query = urlencode({"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge})
        try:
            with urllib.request.urlopen(callback + "?" + query, timeout=10) as response:
                echoed = response.status == 200 and response.read() == challenge.encode()
                code = response.status
        except urllib.error.HTTPError as err:
            echoed, code = False, err.code
        except OSError:
            echoed, code = False, 0
        with self._lock:
            if not echoed:
                self.failed_verifications.append((mode, code))
            elif mode == "subscribe":
                self.verified[(callback, topic)] = form.get("hub.secret")
            else:
                self.verified.pop((callback, topic), None)

    def publish(self, topic: str, body: bytes, method: str = "sha256") -> list[int]:
        """POST ``body`` signed to every verified subscriber of ``topic``; their codes."""
        import urllib.error
        import urllib.request

        codes = []
        with self._lock:
            targets = [(c, s) for (c, t), s in self.verified.items() if t == topic]
        for callback, secret in targets:
            headers = {"Content-Type": "application/atom+xml"}
            if secret:
                headers["X-Hub-Signature"] = sign(secret, body, method)
            request = urllib.request.Request(callback, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    codes.append(response.status)
            except urllib.error.HTTPError as err:
                codes.append(err.code)
        return codes

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
