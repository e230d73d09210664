"""The web view's routes, in one table.

Klein's URL rules (:mod:`planet.web`), the fast path that answers the most requested URLs
before Klein's routing, and the ``route`` label of ``/metrics``
(:func:`planet.metrics.route_of`) are all made from :data:`ROUTES`, so they cannot drift
apart. A leaf module: it imports nothing of planet.
"""

from __future__ import annotations

from attrs import field, frozen
from prometheus_client import CONTENT_TYPE_LATEST

HTML = b"text/html; charset=utf-8"
ATOM = b"application/atom+xml; charset=utf-8"
RSS = b"application/rss+xml; charset=utf-8"
JSON = b"application/json; charset=utf-8"
JSON_FEED = b"application/feed+json; charset=utf-8"
OPML = b"text/x-opml; charset=utf-8"
CSS = b"text/css; charset=utf-8"
METRICS = CONTENT_TYPE_LATEST.encode()
TEXT = b"text/plain; charset=utf-8"


@frozen
class Route:
    """One route: GET and HEAD on its URL rules, answered by one handler.

    ``name`` is the route's ``/metrics`` label and the first part of its pages' cache keys;
    ``rules`` are Klein (werkzeug) rules, either a fixed path or a prefix and one
    ``<string:...>`` path segment; ``handler`` names the method of
    :class:`planet.web.PlanetWeb` that answers (by default ``name``); a ``hot`` route is
    answered before Klein's routing when asked for with no query. The pages of a
    ``views_only`` route show entries and what :func:`planet.render.feed_views` makes of the
    feeds, no fetch times or states: they are cached per ``Store.shown_version``, so a
    cycle of 304s does not render them again.
    """

    name: str
    rules: tuple[str, ...]
    content_type: bytes
    handler: str = field()
    hot: bool = False
    #: HTTP methods answered (the WebSub callback also takes the hub's POSTs).
    methods: tuple[str, ...] = ("GET", "HEAD")
    views_only: bool = False

    @handler.default
    def _handler(self) -> str:
        return self.name


ROUTES = (
    Route("river", ("/", "/index.html"), HTML, hot=True, views_only=True),
    Route("feed_river", ("/feeds/<string:slug>",), HTML, views_only=True),
    Route("atom", ("/atom.xml",), ATOM, hot=True, views_only=True),
    Route("rss20", ("/rss20.xml",), RSS, hot=True, views_only=True),
    Route("json_feed", ("/feed.json",), JSON_FEED, hot=True, views_only=True),
    Route("opml", ("/opml.xml",), OPML, views_only=True),
    Route("feeds", ("/feeds",), HTML),
    Route("feeds_json", ("/feeds.json",), JSON),
    Route("style", ("/style.css",), CSS),
    Route("metrics", ("/metrics",), METRICS, handler="prometheus"),
    Route("health", ("/health",), JSON),
    Route("websub", ("/websub/<string:sub_id>",), TEXT, methods=("GET", "HEAD", "POST")),
)


def _fixed_paths() -> dict[bytes, Route]:
    return {r.encode(): route for route in ROUTES for r in route.rules if "<" not in r}


def _prefixes() -> tuple[tuple[bytes, Route], ...]:
    return tuple(
        (rule.partition("<")[0].encode(), route)
        for route in ROUTES
        for rule in route.rules
        if "<" in rule
    )


#: Every route by its name.
BY_NAME = {route.name: route for route in ROUTES}
#: Every fixed path and its route.
BY_PATH = _fixed_paths()
#: The routes of the fast path, by their fixed paths.
HOT = {path: route for path, route in BY_PATH.items() if route.hot}
_PREFIXES = _prefixes()


def match(path: bytes) -> Route | None:
    """The route of a request path (no query), as Klein matches it; None when none does."""
    route = BY_PATH.get(path)
    if route is not None:
        return route
    for prefix, route in _PREFIXES:
        if path.startswith(prefix):
            segment = path[len(prefix) :]
            if segment and b"/" not in segment:
                return route
    return None
