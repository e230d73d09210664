"""The baselines for planet's front page: a bare Klein app (or a bare Resource) serving bytes.

``.venv/bin/python benchmarks/bare_klein.py BODY_FILE [HEADERS_JSON] [--resource]``
serves the bytes of ``BODY_FILE`` (``cycle.py`` saves planet's front page there) at
``/`` with the headers of ``HEADERS_JSON`` (a JSON object; planet's own response headers
minus Date, Server and the framing ones), on ``127.0.0.1`` and a free port, printed as
``{"port": N}`` on stdout. Same reactor (epoll), same twisted.web ``Site``, no access
log. With Klein, what is left is Klein's routing and twisted.web's HTTP: the ceiling for
any Klein handler. With ``--resource``, a leaf ``twisted.web.resource.Resource`` instead:
twisted.web's HTTP alone (planet answers its hot URLs before Klein's routing).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from klein import Klein
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site


def make_app(body: bytes, headers: dict[str, str]) -> Klein:
    app = Klein()
    encoded = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    @app.route("/", methods=["GET", "HEAD"])
    def home(request: Any) -> bytes:
        for name, value in encoded:
            request.setHeader(name, value)
        return body

    return app


class BareResource(Resource):
    isLeaf = True

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        super().__init__()
        self.body = body
        self.headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    def render_GET(self, request: Any) -> bytes:
        for name, value in self.headers:
            request.setHeader(name, value)
        return self.body


def main(argv: list[str]) -> int:
    plain = "--resource" in argv
    argv = [a for a in argv if a != "--resource"]
    body = Path(argv[0]).read_bytes()
    headers = json.loads(Path(argv[1]).read_text()) if len(argv) > 1 else {}
    root = BareResource(body, headers) if plain else make_app(body, headers).resource()
    site = Site(root)
    site.log = lambda request: None  # type: ignore[method-assign]
    site.noisy = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
    print(json.dumps({"port": port.getHost().port}), flush=True)
    reactor.run()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
