"""The htmltmpl dialect of PlanetPlanet and Venus, compiled to Jinja2 once, at load.

No maintained htmltmpl package exists; its templates (``<TMPL_VAR>``, ``<TMPL_IF>``,
``<TMPL_UNLESS>``, ``<TMPL_ELSE>``, ``<TMPL_LOOP>``, ``<TMPL_INCLUDE>``, ``###`` comments)
are turned into Jinja2 source and compiled by Jinja2. As in Venus (which ran htmltmpl with
``html_escape=0``), a ``TMPL_VAR`` prints its value as it is unless it says
``ESCAPE="HTML"`` or ``ESCAPE="URL"``; names are case-insensitive; a name inside a loop is
looked up in the loop's item, then in the enclosing loops' items, then globally. The values
are :mod:`planet.templating`'s, safe to print raw.

Errors carry the template's file and line: :class:`TemplateError`.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote_plus

import jinja2
from attrs import define, field, frozen

__all__ = ["Scope", "TemplateError", "compile_file", "compile_text", "to_jinja"]


class TemplateError(Exception):
    """A template that does not compile: ``file:line: what``."""


_TAG = re.compile(
    r"<(?P<close>/?)TMPL_(?P<kind>[A-Za-z_]+)(?P<args>(?:\s[^>]*?)?)\s*/?>"
    r"|<!--\s*(?P<cclose>/?)TMPL_(?P<ckind>[A-Za-z_]+)(?P<cargs>(?:\s.*?)?)\s*-->",
    re.IGNORECASE | re.DOTALL,
)
_ARG = re.compile(r"""(\w+)\s*=\s*(?:"([^"]*)"|'([^']*)'|(\S+))|"([^"]*)"|(\S+)""")
# htmltmpl removes "### " to the end of the line; a line of ### only goes too.
_COMMENT = re.compile(r"### .*|^[ \t]*###[ \t]*$", re.MULTILINE)
_MAX_INCLUDE_DEPTH = 8
_ESCAPES = ("HTML", "URL", "NONE")
_LOOP_VARS = ("__first__", "__last__", "__odd__", "__even__", "__inner__", "__pass__")


@frozen
class _Tag:
    kind: str
    close: bool
    args: str
    line: int


def _parse_args(tag: _Tag, where: str) -> dict[str, str]:
    """``NAME``/``ESCAPE``/``DEFAULT``/``GLOBAL`` of a tag; a bare first word is its name."""
    args: dict[str, str] = {}
    for match in _ARG.finditer(tag.args):
        key, dq, sq, bare, lone_q, lone = match.groups()
        if key is not None:
            value = next(v for v in (dq, sq, bare) if v is not None)
            args[key.upper()] = value
        elif "NAME" not in args:
            args["NAME"] = lone_q if lone_q is not None else lone
        else:
            raise TemplateError(f"{where}:{tag.line}: TMPL_{tag.kind}: unexpected {lone!r}")
    return args


@define
class _Compiler:
    """Turns one template file (and its includes) into Jinja2 source."""

    search: Sequence[str]
    out: list[str] = field(factory=list)
    texts: list[str] = field(factory=list)
    #: Open blocks: (kind, file, line), innermost last.
    stack: list[tuple[str, str, int]] = field(factory=list)
    depth: int = 0

    def compile(self, text: str, where: str, including: tuple[str, ...] = ()) -> None:
        text = _COMMENT.sub("", text)
        pos = 0
        for match in _TAG.finditer(text):
            self._text(text[pos : match.start()])
            pos = match.end()
            close = match.group("close") if match.group("kind") else match.group("cclose")
            kind = (match.group("kind") or match.group("ckind")).upper()
            args = match.group("args") if match.group("kind") else match.group("cargs")
            line = text.count("\n", 0, match.start()) + 1
            self._tag(_Tag(kind, bool(close), args or "", line), where, including)
        self._text(text[pos:])

    def finish(self, where: str) -> str:
        if self.stack:
            kind, path, line = self.stack[-1]
            raise TemplateError(f"{path}:{line}: <TMPL_{kind}> is never closed")
        return "".join(self.out)

    def _text(self, text: str) -> None:
        if not text:
            return
        if not any(d in text for d in ("{{", "{%", "{#", "}}", "%}", "#}")):
            self.out.append(text)
        else:
            # Jinja2 delimiters in the page itself: printed as a constant.
            self.texts.append(text)
            self.out.append(f"{{{{ _texts[{len(self.texts) - 1}] }}}}")

    def _tag(self, tag: _Tag, where: str, including: tuple[str, ...]) -> None:
        at = f"{where}:{tag.line}"
        kind = tag.kind
        if tag.close:
            if kind not in ("IF", "UNLESS", "LOOP"):
                raise TemplateError(f"{at}: </TMPL_{kind}> closes nothing")
            if not self.stack or self.stack[-1][0] != kind:
                opened = f"<TMPL_{self.stack[-1][0]}>" if self.stack else "no block"
                raise TemplateError(f"{at}: </TMPL_{kind}> does not close {opened}")
            self.stack.pop()
            if kind == "LOOP":
                self.depth -= 1
                self.out.append("{% endfor %}")
            else:
                self.out.append("{% endif %}")
            return
        if kind == "ELSE":
            if not self.stack or self.stack[-1][0] not in ("IF", "UNLESS"):
                raise TemplateError(f"{at}: <TMPL_ELSE> outside <TMPL_IF> or <TMPL_UNLESS>")
            self.out.append("{% else %}")
            return
        args = _parse_args(tag, where)
        if kind == "INCLUDE":
            self._include(args.get("NAME"), at, where, including)
            return
        if kind not in ("VAR", "IF", "UNLESS", "LOOP"):
            raise TemplateError(f"{at}: unknown tag <TMPL_{kind}>")
        name = args.get("NAME")
        if not name:
            raise TemplateError(f"{at}: <TMPL_{kind}> has no name")
        # Filters and subscripts only: Jinja2 calls them directly (a function call in a
        # template goes through Context.call, several times slower).
        value = f"_s{self.depth}[{_literal(name.lower())}]"
        if kind == "VAR":
            escape = args.get("ESCAPE", "NONE").upper()
            if escape not in _ESCAPES:
                raise TemplateError(f"{at}: ESCAPE={args['ESCAPE']!r}: not one of HTML, URL, NONE")
            default = args.get("DEFAULT", "")
            arg = f"({_literal(default)})" if default else ""
            self.out.append(f"{{{{ {value}|_{escape.lower()}{arg} }}}}")
        elif kind in ("IF", "UNLESS"):
            test = "" if kind == "IF" else "not "
            self.out.append(f"{{% if {test}{value} %}}")
            self.stack.append((kind, where, tag.line))
        else:
            self.depth += 1
            self.out.append(f"{{% for _s{self.depth} in {value}|_loop(_s{self.depth - 1}) %}}")
            self.stack.append((kind, where, tag.line))

    def _include(self, name: str | None, at: str, where: str, including: tuple[str, ...]) -> None:
        if not name:
            raise TemplateError(f"{at}: <TMPL_INCLUDE> has no name")
        if len(including) >= _MAX_INCLUDE_DEPTH:
            raise TemplateError(f"{at}: <TMPL_INCLUDE {name}>: includes nested too deep")
        path = find_file(name, [os.path.dirname(where), *self.search])
        if path is None:
            raise TemplateError(f"{at}: <TMPL_INCLUDE {name}>: file not found")
        if os.path.abspath(path) in including:
            raise TemplateError(f"{at}: <TMPL_INCLUDE {name}> includes itself")
        self.compile(_read(path, at), path, (*including, os.path.abspath(path)))


def _literal(text: str) -> str:
    """``text`` as a Jinja2 string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def find_file(name: str, directories: Iterable[str]) -> str | None:
    """``name`` itself when absolute, else the first directory holding it."""
    if os.path.isabs(name):
        return name if os.path.isfile(name) else None
    for directory in directories:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def _read(path: str, where: str) -> str:
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise TemplateError(f"{where}: cannot read {path}: {reason}") from None


def to_jinja(text: str, where: str, search: Sequence[str] = ()) -> tuple[str, list[str]]:
    """The Jinja2 source of htmltmpl ``text`` and the constant texts it prints."""
    compiler = _Compiler(search)
    compiler.compile(text, where, (os.path.abspath(where),))
    return compiler.finish(where), compiler.texts


# --- what the compiled templates call --------------------------------------------------


class Scope(dict):
    """The names a template sees at one point: a loop item's (and the loop's own), then
    the enclosing ones' (a missing name is None)."""

    __slots__ = ("parent",)

    def __init__(self, values: Mapping[str, Any], parent: Scope | None = None) -> None:
        super().__init__(values)
        self.parent = parent

    def __missing__(self, key: str) -> Any:
        return self.parent[key] if self.parent is not None else None


def _loop(items: Any, scope: Scope) -> Iterator[Scope]:
    if not isinstance(items, (list, tuple)):
        return
    last = len(items)
    for number, item in enumerate(items, 1):
        if isinstance(item, Scope):
            # Made for this render (planet.templating's items): chained, not copied.
            item.parent = scope
        else:
            item = Scope(item if isinstance(item, Mapping) else {}, scope)
        inner = Scope({}, item)
        inner["__first__"] = number == 1
        inner["__last__"] = number == last
        inner["__odd__"] = number % 2 == 1
        inner["__even__"] = number % 2 == 0
        inner["__inner__"] = 1 < number < last
        inner["__pass__"] = number
        inner["__passtotal__"] = last
        yield inner


def _text(value: Any, default: str = "") -> str:
    if value is None or value == "" or value is False:
        return default
    return str(value)


def _none(value: Any, default: str = "") -> str:
    if isinstance(value, str) and value:
        return value
    return _text(value, default)


def _html(value: Any, default: str = "") -> str:
    # Values that are text (names, ids, links) are held escaped once already.
    escaped = getattr(value, "escaped", None)
    if escaped is not None:
        return str(escaped)
    return html.escape(_text(value, default), quote=True)


def _url(value: Any, default: str = "") -> str:
    plain = getattr(value, "plain", None)
    return quote_plus(plain if plain is not None else _text(value, default))


_env = jinja2.Environment(autoescape=False, keep_trailing_newline=True, cache_size=0)  # noqa: S701
_env.filters.update(_loop=_loop, _none=_none, _html=_html, _url=_url)


@frozen
class Compiled:
    """A compiled htmltmpl template: ``render(values)`` gives its output."""

    path: str
    template: jinja2.Template
    texts: tuple[str, ...]

    def render(self, values: Mapping[str, Any]) -> str:
        return self.template.render(_s0=Scope(values), _texts=self.texts)


def compile_text(text: str, where: str, search: Sequence[str] = ()) -> Compiled:
    """Compile htmltmpl ``text`` (``where`` names it in errors; includes are looked up next
    to it, then in ``search``)."""
    source, texts = to_jinja(text, where, search)
    try:
        template = _env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:  # a bug of ours, not the operator's
        raise TemplateError(f"{where}: does not compile: {exc}") from None
    return Compiled(where, template, tuple(texts))


def compile_file(path: str, search: Sequence[str] = ()) -> Compiled:
    """Compile the htmltmpl file at ``path``."""
    return compile_text(_read(path, path), path, search)


#: ``values -> output`` of any template kind.
Render = Callable[[Mapping[str, Any]], str]
