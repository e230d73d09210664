"""The operator's theme: ``template_files`` compiled, ``bill_of_materials`` read, at load.

A template ``<name>.<ext>.<kind>`` makes the output ``<name>.<ext>``, served at
``/<name>.<ext>`` (and at ``/`` for ``index.html``): ``.tmpl`` is htmltmpl
(:mod:`planet.htmltmpl`), ``.j2``/``.jinja`` Jinja2. The kinds Venus also knew (XSLT,
Genshi, Django) are one warning each. A relative name is looked up in
``template_directories``, then the config file's directory, then the working directory.
Loading runs where the config is read (a thread at a reload); errors are
:class:`~planet.ini.ConfigError` naming the file and line, so start-up and ``planet check``
refuse a broken template and a reload keeps the old one.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Mapping
from typing import Any

import jinja2
from attrs import frozen

from planet import htmltmpl
from planet.htmltmpl import TemplateError, find_file
from planet.ini import ConfigError

__all__ = ["Material", "Template", "Theme", "content_type", "load_theme", "search_path"]

HTMLTMPL = (".tmpl",)
JINJA = (".j2", ".jinja", ".jinja2")
#: Kinds Venus ran that planet does not: a warning, and the output is not made.
OTHER_KINDS = (".xslt", ".genshi", ".dj")
#: A bill-of-materials file larger than this is not served (images, stylesheets).
MAX_MATERIAL_BYTES = 8 * 1024 * 1024


@frozen
class Template:
    """One template: its file and output name and ``render(values) -> str``."""

    path: str
    output: str
    kind: str
    compiled: Any

    def render(self, values: Mapping[str, Any]) -> str:
        if self.kind != "tmpl":
            # Jinja2 names are case-sensitive: Venus's capitalized loops under both names.
            values = {**values, "Items": values.get("items"), "Channels": values.get("channels")}
        return str(self.compiled.render(values))


@frozen
class Material:
    """A bill-of-materials file: its path under the output, its bytes."""

    output: str
    body: bytes


@frozen
class Theme:
    """The operator's templates and materials, compiled and read."""

    templates: tuple[Template, ...] = ()
    materials: tuple[Material, ...] = ()
    warnings: tuple[str, ...] = ()

    def output_names(self) -> list[str]:
        return [t.output for t in self.templates] + [m.output for m in self.materials]


def search_path(config: Any) -> list[str]:
    """Where relative template and material names are looked for, in order."""
    here = os.path.dirname(os.path.abspath(config.path))
    dirs = []
    for directory in config.template_directories:
        if os.path.isabs(directory):
            dirs.append(directory)
        else:
            dirs += [os.path.join(here, directory), os.path.abspath(directory)]
    return [*dirs, here, os.getcwd()]


def content_type(output: str) -> bytes:
    """The Content-Type of an output, from its extension."""
    ext = os.path.splitext(output)[1].lower()
    known = {
        ".html": "text/html",
        ".htm": "text/html",
        ".xml": "application/xml",
        ".rss": "application/rss+xml",
        ".atom": "application/atom+xml",
        ".opml": "text/x-opml",
        ".json": "application/json",
        ".css": "text/css",
        ".js": "text/javascript",
        ".txt": "text/plain",
    }
    kind = known.get(ext) or mimetypes.guess_type(output)[0] or "application/octet-stream"
    if output.startswith("rss") and ext == ".xml":
        kind = "application/rss+xml"
    elif output.startswith("atom") and ext == ".xml":
        kind = "application/atom+xml"
    elif output.startswith("opml") and ext == ".xml":
        kind = "text/x-opml"
    textual = kind.startswith("text/") or kind.endswith(("xml", "json")) or kind.endswith("+xml")
    return f"{kind}; charset=utf-8".encode() if textual else kind.encode()


_jinja = jinja2.Environment(autoescape=True, keep_trailing_newline=True)


def _jinja_template(path: str) -> Any:
    try:
        with open(path, encoding="utf-8-sig") as f:
            source = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise TemplateError(f"{path}: cannot read: {reason}") from None
    try:
        return _jinja.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{path}:{exc.lineno}: {exc.message}") from None


def _safe_output(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return bool(name) and not os.path.isabs(name) and ".." not in parts and "" not in parts


def load_theme(config: Any) -> Theme:
    """Compile ``config``'s templates and read its materials; :class:`ConfigError` when a
    template cannot be found or compiled (``file:line: what``)."""
    search = search_path(config)
    templates: list[Template] = []
    warnings: list[str] = []
    missing: list[str] = []
    for name in config.template_files:
        stem, kind = os.path.splitext(name)
        output = os.path.basename(stem)
        if kind in OTHER_KINDS:
            warnings.append(
                f"{config.path}: template_files: {name}: {kind[1:]} templates are not "
                "supported (htmltmpl .tmpl and Jinja2 .j2 are); not made"
            )
            continue
        if kind not in HTMLTMPL + JINJA or not output:
            raise ConfigError(
                f"{config.path}: template_files: {name}: not a template planet knows "
                "(name.ext.tmpl for htmltmpl, name.ext.j2 for Jinja2)"
            )
        path = find_file(name, search)
        if path is None:
            missing.append(name)
            continue
        try:
            compiled: Any
            if kind in HTMLTMPL:
                compiled = htmltmpl.compile_file(path, search)
            else:
                compiled = _jinja_template(path)
        except TemplateError as exc:
            raise ConfigError(str(exc)) from None
        templates.append(Template(path, output, kind[1:], compiled))
    if missing:
        # A planet moving over may not have brought its templates yet: it still runs.
        warnings.append(
            f"{config.path}: template_files: {' '.join(missing)}: not found in "
            f"{', '.join(search)}; not made"
        )
    materials = []
    unfound: list[str] = []
    for name in config.bill_of_materials:
        path = find_file(name, search)
        if not _safe_output(name) or path is None:
            unfound.append(name)
            continue
        try:
            if os.path.getsize(path) > MAX_MATERIAL_BYTES:
                warnings.append(f"{config.path}: bill_of_materials: {name}: over 8 MiB; not served")
                continue
            with open(path, "rb") as f:
                materials.append(Material(name.replace("\\", "/"), f.read()))
        except OSError as exc:
            warnings.append(f"{config.path}: bill_of_materials: {name}: {exc.strerror or exc}")
    if unfound:
        warnings.append(
            f"{config.path}: bill_of_materials: {' '.join(unfound)}: not found in "
            f"{', '.join(search)}; not served"
        )
    return Theme(tuple(templates), tuple(materials), tuple(warnings))
