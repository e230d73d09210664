"""The operator's template outputs and materials in the web view, and every output's page.

A template's output is a page like the others: rendered off the reactor through the page
cache (:mod:`planet.pagecache`), once per shown version of the store (its variables hold
entries and feed views, no fetch times: see :mod:`planet.templating`), answered with the
same ETag/304/gzip/HEAD/Cache-Control handling. A render that fails at run time is one log
line; the last good output keeps being served and ``/health`` counts the templates failing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from attrs import define, field, frozen
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from planet import formats, renderjobs
from planet.config import Config
from planet.model import utc_from_timestamp
from planet.pagecache import Rendered, rendered
from planet.renderjobs import LazyFeedViews, RiverPager, RiverSource
from planet.routes import BY_NAME, Route
from planet.sanitize import strip_xml_illegal
from planet.templating import planet_values
from planet.theme import Template, Theme, content_type

if TYPE_CHECKING:
    from planet.web import PlanetWeb

#: What an output's page getter gives: the page now, or its rendering under way.
Page = Rendered | Deferred[Rendered | None]


@define
class TemplateFailures:
    """The last good output of each template, and which templates fail (any thread)."""

    _good: dict[str, bytes] = field(factory=dict)
    _failing: set[str] = field(factory=set)
    _lock: threading.Lock = field(factory=threading.Lock)
    _log: Logger = field(factory=lambda: Logger(namespace="planet.web"))

    def ok(self, template: Template, body: bytes) -> None:
        with self._lock:
            self._good[template.path] = body
            self._failing.discard(template.path)

    def failed(self, template: Template, exc: BaseException) -> bytes:
        """One log line; the last good output (raises when there is none)."""
        with self._lock:
            self._failing.add(template.path)
            good = self._good.get(template.path)
        self._log.error(
            "template {path} failed to render ({error}); {what}",
            path=template.path,
            error=f"{exc.__class__.__name__}: {exc}",
            what="serving its last good output" if good is not None else "no output to serve",
        )
        if good is None:
            raise exc
        return good

    @property
    def count(self) -> int:
        """How many templates failed at their last render."""
        with self._lock:
            return len(self._failing)


@frozen
class TemplateJob:
    """A template's output, from the river's first page (inputs taken on the reactor)."""

    template: Template
    pager: RiverPager
    source: RiverSource
    feeds: LazyFeedViews
    titles: Mapping[str, str]
    now: datetime
    failures: TemplateFailures

    def render(self) -> bytes:
        try:
            items, _ = self.pager.page(self.source, 1)
            values = planet_values(
                self.source.config,
                [item.entry for item in items],
                self.feeds.get().feeds,
                self.titles,
                self.now,
            )
            body = strip_xml_illegal(self.template.render(values)).encode("utf-8")
        except Exception as exc:
            return self.failures.failed(self.template, exc)
        self.failures.ok(self.template, body)
        return body


@frozen
class _Paths:
    """The theme's URL paths, made once per config."""

    config: Config
    templates: dict[bytes, Template]
    materials: dict[bytes, tuple[Rendered, bytes]]


@define
class ThemePages:
    """What the operator's theme serves, by path."""

    failures: TemplateFailures = field(factory=TemplateFailures)
    _paths: _Paths | None = None

    def paths(self, config: Config) -> _Paths:
        if self._paths is None or self._paths.config is not config:
            theme: Theme = config.theme or Theme()
            templates = {f"/{t.output}".encode(): t for t in theme.templates}
            if b"/index.html" in templates:
                templates[b"/"] = templates[b"/index.html"]
            loaded = utc_from_timestamp(0)
            materials = {
                f"/{m.output}".encode(): (rendered(m.body, loaded), content_type(m.output))
                for m in theme.materials
            }
            self._paths = _Paths(config, templates, materials)
        return self._paths

    def answer(self, web: PlanetWeb, request: Any) -> Any:
        """The theme's answer to ``request`` (GET/HEAD), or None when the path is not its."""
        if web.config.theme is None or request.method not in (b"GET", b"HEAD"):
            return None
        paths = self.paths(web.config)
        template = paths.templates.get(request.path)
        if template is not None:
            route = _route(template)
            return web._serve(request, route, lambda: self.job(web, template))
        material = paths.materials.get(request.path)
        if material is not None:
            from planet.httpsend import send

            return send(material[0], request, material[1], web.config.cache_max_age)
        return None

    def job(self, web: PlanetWeb, template: Template) -> TemplateJob:
        views = web._feed_views()
        states = web.store.feed_states()
        titles = {url: state.title for url, state in states.items() if state.title}
        source = web._source(None)
        return TemplateJob(template, web._pager, source, views, titles, web._now(), self.failures)

    def outputs(self, web: PlanetWeb) -> dict[str, Callable[[], Page]]:
        """Every file of ``output_dir`` and how to get its page, as served now."""
        config = web.config
        theme: Theme | None = config.theme
        if theme is not None and theme.templates:
            pages: dict[str, Callable[[], Page]] = {
                t.output: _template_page(self, web, t) for t in theme.templates
            }
        else:
            pages = _default_pages(web)
        if theme is not None:
            for path, (page, _) in self.paths(config).materials.items():
                pages[path.decode()[1:]] = _constant(page)
        return pages


def _route(template: Template) -> Route:
    # views_only: planet_values holds entries, feed views and state titles, and "now" as
    # the time of the render; nothing a 304 changes.
    return Route(f"template:{template.output}", (), content_type(template.output), views_only=True)


def _template_page(themes: ThemePages, web: PlanetWeb, template: Template) -> Callable[[], Page]:
    route = _route(template)
    return lambda: web.page(route, (), lambda: themes.job(web, template))


def _constant(page: Rendered) -> Callable[[], Page]:
    return lambda: page


def _default_pages(web: PlanetWeb) -> dict[str, Callable[[], Page]]:
    """The default theme's files, under the keys their routes cache them by."""
    from planet.web import _STYLE

    def feed(document: renderjobs.FeedDocument) -> Callable[[], renderjobs.FeedJob]:
        return lambda: web._feed_job(document, 1)

    jobs: Sequence[tuple[str, str, tuple[str, ...], Callable[[], Any]]] = (
        ("index.html", "river", ("", "1"), lambda: web._river_job(1, None)),
        ("atom.xml", "atom", ("1",), feed(formats.render_atom)),
        ("rss20.xml", "rss20", (), feed(renderjobs.rss20)),
        ("feed.json", "json_feed", ("1",), feed(formats.render_json_feed)),
        ("opml.xml", "opml", (), web._opml_job),
    )
    pages: dict[str, Callable[[], Page]] = {}
    for name, route, key, inputs in jobs:
        pages[name] = _cached(web, BY_NAME[route], key, inputs)
    pages["style.css"] = _constant(_STYLE)
    return pages


def _cached(
    web: PlanetWeb, route: Route, key: tuple[str, ...], inputs: Callable[[], Any]
) -> Callable[[], Page]:
    return lambda: web.page(route, key, inputs)
