"""Bound the nesting an HTML5 parser builds from untrusted markup, in linear time.

nh3 parses with html5ever, which walks its stack of open elements for nearly every tag
(scope checks, reconstruction of formatting elements): ``<ul>`` x 150,000 took 79 s, and
``<p><b title=N>x</p>`` repeated builds a tree quadratic in the input. :func:`flatten`
runs before the parser: it follows html5ever's tokenizer and tree construction closely
enough to know its stack of open elements and its list of active formatting elements, and
drops the start tags that would take the stack past ``max_depth`` (their text is kept:
the content is flattened there) or the formatting list past ``max_formatting`` entries.
The parser then never holds more than about ``max_depth`` open elements, so each tag costs
it at most that much.

Only tags are dropped, never text, and what is left is still sanitized afterwards: where
this model and html5ever might disagree, the worst outcome is a parse as slow as before,
which the parse time limit catches. Everything is O(1) per token (indexes instead of
stack walks), except the rare adoption-agency cases, bounded by the depth.

Rules follow html5ever 0.40 (``tree_builder/rules.rs``): ``select`` is parsed in body
mode and bounds the default scope; scripting is on (``noscript`` is raw text).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from functools import lru_cache

__all__ = ["MAX_FORMATTING", "MAX_NESTING", "flatten"]

#: Open elements beyond this depth are flattened (their tags dropped, text kept).
MAX_NESTING = 512
#: Active formatting elements (after the last marker) beyond this are not opened: each
#: can be re-created at every paragraph, so they multiply the tree.
MAX_FORMATTING = 12
#: Formatting elements re-created (at each paragraph, say) beyond this many in all are
#: closed instead: each re-creation is a new element in the tree.
MAX_RECREATED = 4096
#: Misplaced content put before a table ("foster parenting") beyond this many tokens closes
#: the table first: html5ever finds each one's place by a scan of the table's siblings.
MAX_FOSTERED = 256

_HTML, _SVG, _MATH = 0, 1, 2

_WS = "\t\n\f\r "
# A tag as html5ever's tokenizer reads it (attribute values quoted with " or ' may hold
# ">"); the lookaheads make every piece maximal so that a tag without its ">" fails fast.
# One token of markup: a tag (groups 1-4: "/" or "", name, attributes, the last run of
# separators among them) or the start of a comment (5), of other markup (6: "!", "?" or
# "/") or of a tag cut off by the end (7).
_TOKEN = re.compile(
    r"""<(?:
        (/?)([a-zA-Z][^\t\n\f\r />]*)(?![^\t\n\f\r />])
        ((?:
            ([\t\n\f\r /]+)(?![\t\n\f\r /])
          | [^\t\n\f\r />][^\t\n\f\r />=]*(?![^\t\n\f\r />=])
            (?:[\t\n\f\r ]*=[\t\n\f\r ]*
               (?:"[^"]*"|'[^']*'|[^\t\n\f\r >"'][^\t\n\f\r >]*(?![^\t\n\f\r >])|(?=>)))?
        )*)>
      | (!--)
      | ([!?/])
      | ([a-zA-Z])
    )""",
    re.VERBOSE,
)
_COMMENT_END = re.compile(r"--!?>")
# One attribute within a tag's attribute text, as the tokenizer splits them.
_ATTRIBUTE = re.compile(
    r"""([^\t\n\f\r />][^\t\n\f\r />=]*)
    (?:[\t\n\f\r ]*=[\t\n\f\r ]*("[^"]*"|'[^']*'|[^\t\n\f\r >"'][^\t\n\f\r >]*))?""",
    re.VERBOSE,
)
_SCRIPT_DATA = re.compile(r"</script[\t\n\f\r />]|<!--", re.IGNORECASE)
_SCRIPT_ESCAPED = re.compile(r"</script[\t\n\f\r />]|<script[\t\n\f\r />]|-->", re.IGNORECASE)
_SCRIPT_DOUBLE = re.compile(r"</script[\t\n\f\r />]|-->", re.IGNORECASE)


@lru_cache(maxsize=16)
def _raw_end(name: str) -> re.Pattern[str]:
    return re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE)


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_DEFAULT_SCOPE = _set("applet caption html table td th marquee object template select")
_MATH_TEXT_POINTS = _set("mi mo mn ms mtext")
_SVG_HTML_POINTS = _set("foreignobject desc title")
_SPECIAL = _set(
    "address applet area article aside base basefont bgsound blockquote body br button "
    "caption center col colgroup dd details dir div dl dt embed fieldset figcaption figure "
    "footer form frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img "
    "input isindex li link listing main marquee menu meta nav noembed noframes noscript "
    "object ol p param plaintext pre script section select source style summary table "
    "tbody td template textarea tfoot th thead title tr track ul wbr xmp"
)
_LIST_STOP = _SPECIAL - {"address", "div", "p"}
_IMPLIED = _set("dd dt li option optgroup p rb rp rt rtc")
_THOROUGH = _IMPLIED | _set("caption colgroup tbody td tfoot th thead tr")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_FORMATTING = _set("a b big code em font i nobr s small strike strong tt u")
_CLOSE_P = _set(
    "address article aside blockquote center details dialog dir div dl fieldset "
    "figcaption figure footer header hgroup main menu nav ol p search section summary ul"
)
_BLOCK_ENDS = _set(
    "address article aside blockquote button center details dialog dir div dl fieldset "
    "figcaption figure footer header hgroup listing main menu nav ol pre search section "
    "select summary ul"
)
_VOID_RECONSTRUCT = _set("area br embed img keygen wbr")
_TABLE_PARTS = _set("caption col colgroup frame head tbody td tfoot th thead tr")
_BREAKOUT = _set(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i "
    "img li listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt "
    "u ul var"
)
_TABLE_OUTER = _set("table tbody tfoot thead tr")
_TABLE_CONTEXT = _set("table template")
_BODY_CONTEXT = _set("tbody tfoot thead template")
_ROW_CONTEXT = _set("tr template")
_CELL_SECTIONS = _set("caption col colgroup tbody td tfoot th thead tr")
_TABLE_MODES = frozenset({"table", "table body", "row"})
# Start and end tags "in body" has a rule of its own for (any other is pushed, or closes
# the nearest element of its name).
_BODY_START_RULES = (
    _set(
        "html body frameset head base basefont bgsound link meta param source track noframes "
        "style title script template pre listing form li dd dt plaintext button a nobr applet "
        "marquee object table image input hr textarea xmp iframe noembed noscript select "
        "option optgroup rb rtc rp rt math svg"
    )
    | _TABLE_PARTS
    | _CLOSE_P
    | _FORMATTING
    | _VOID_RECONSTRUCT
    | _set("h1 h2 h3 h4 h5 h6")
)
_BODY_END_RULES = (
    _BLOCK_ENDS
    | _FORMATTING
    | _set("form p li dd dt h1 h2 h3 h4 h5 h6 applet marquee object br body html")
)
# Start tags the table modes take themselves; any other is foster parented.
_IN_TABLE = _set("caption col colgroup form script style table tbody td template tfoot th thead tr")
# "in template": the first start tag decides how the template's content is parsed.
_TEMPLATE_MODES = dict.fromkeys(("caption", "colgroup", "tbody", "tfoot", "thead"), "table")
_TEMPLATE_MODES.update({"col": "column group", "tr": "table body", "td": "row", "th": "row"})


class _Element:
    __slots__ = ("index", "key", "lists", "name", "ns", "point")

    def __init__(self, name: str, ns: int, key: str = "", point: bool = False) -> None:
        self.name = name
        self.ns = ns
        self.key = key
        #: An HTML integration point (MathML annotation-xml with an HTML encoding).
        self.point = point
        self.index = -1
        self.lists: tuple[list[int], ...] = ()


class _Tree:
    """html5ever's stack of open elements and list of active formatting elements, indexed.

    The stack's ``html`` root is implicit (below index 0); ``None`` in ``afl`` is a marker.
    """

    def __init__(self) -> None:
        self.stack: list[_Element] = []
        self.afl: list[_Element | None] = []
        self.mode = "body"
        self.template_modes: list[str] = []
        #: Formatting elements re-created so far.
        self.recreated = 0
        #: html5ever's form element pointer (it outlives the element's place on the stack).
        self.form: _Element | None = None
        # Sorted stack indexes of the elements of each kind.
        self.positions: dict[str, list[int]] = {}
        self.scope: list[int] = []
        self.list_scope: list[int] = []
        self.button_scope: list[int] = []
        self.table_scope: list[int] = []
        self.special: list[int] = []
        self.list_stop: list[int] = []
        self.html: list[int] = []
        self._kinds: dict[tuple[str, int], tuple[list[int], ...]] = {}
        self._html_kinds: dict[str, tuple[list[int], ...]] = {}

    # -- the stack ------------------------------------------------------------------------

    def _lists_for(self, name: str, ns: int) -> tuple[list[int], ...]:
        kinds = self._kinds.get((name, ns))
        if kinds is None:
            key = name if ns == _HTML else f"{ns} {name}"
            chosen = [self.positions.setdefault(key, [])]
            if ns == _HTML:
                chosen.append(self.html)
                for members, target in (
                    (_DEFAULT_SCOPE, self.scope),
                    (("ol", "ul"), self.list_scope),
                    (("button",), self.button_scope),
                    (_TABLE_CONTEXT, self.table_scope),
                    (_SPECIAL, self.special),
                    (_LIST_STOP, self.list_stop),
                ):
                    if name in members:
                        chosen.append(target)
            elif name in (_MATH_TEXT_POINTS if ns == _MATH else _SVG_HTML_POINTS):
                chosen.append(self.scope)
            kinds = self._kinds[(name, ns)] = tuple(chosen)
            if ns == _HTML:
                self._html_kinds[name] = kinds
        return kinds

    def push(self, element: _Element) -> _Element:
        element.index = index = len(self.stack)
        element.lists = lists = self._lists_for(element.name, element.ns)
        for kind in lists:
            kind.append(index)
        self.stack.append(element)
        return element

    def push_html(self, name: str, key: str = "") -> _Element:
        element = _Element(name, _HTML, key)
        element.index = index = len(self.stack)
        element.lists = lists = self._html_kinds.get(name) or self._lists_for(name, _HTML)
        for kind in lists:
            kind.append(index)
        self.stack.append(element)
        return element

    def pop(self) -> _Element:
        element = self.stack.pop()
        for kind in element.lists:
            kind.pop()
        element.index = -1
        return element

    def truncate(self, index: int) -> None:
        """Pop the element at ``index`` and everything above it."""
        stack = self.stack
        while len(stack) > index:
            element = stack.pop()
            for kind in element.lists:
                kind.pop()
            element.index = -1

    def remove(self, element: _Element) -> None:
        """Take ``element`` out of the middle of the stack (costs what is above it)."""
        above = self.stack[element.index + 1 :]
        self.truncate(element.index)
        for other in above:
            self.push(other)

    def insert_after(self, anchor: _Element, element: _Element) -> None:
        above = self.stack[anchor.index + 1 :]
        self.truncate(anchor.index + 1)
        self.push(element)
        for other in above:
            self.push(other)

    def current(self) -> _Element | None:
        return self.stack[-1] if self.stack else None

    def current_is(self, names: frozenset[str] | tuple[str, ...]) -> bool:
        if not self.stack:
            return False
        top = self.stack[-1]
        return top.ns == _HTML and top.name in names

    def top(self, name: str) -> int:
        found = self.positions.get(name)
        return found[-1] if found else -1

    def in_scope(self, name: str, extra: list[int] | None = None) -> bool:
        """Whether an HTML ``name`` element is above the nearest scope boundary (or is it)."""
        found = self.positions.get(name)
        if not found:
            return False
        at = found[-1]
        scope = self.scope
        if scope and scope[-1] > at:
            return False
        return not (extra and extra[-1] > at)

    def in_table_scope(self, *names: str) -> bool:
        bound = self.table_scope[-1] if self.table_scope else -1
        found = max(self.top(name) for name in names)
        return found >= 0 and found >= bound

    def pop_until(self, name: str) -> None:
        """Pop up to and including the topmost HTML ``name`` element (which must be open)."""
        self.truncate(self.positions[name][-1])

    def pop_until_current(self, names: frozenset[str]) -> None:
        while self.stack and not self.current_is(names):
            self.pop()

    def implied_end(self, names: frozenset[str] = _IMPLIED, keep: str = "") -> None:
        stack = self.stack
        while stack and (top := stack[-1]).ns == _HTML and top.name in names and top.name != keep:
            self.pop()

    def close_p(self) -> None:
        if self.positions.get("p") and self.in_scope("p", self.button_scope):
            self.implied_end(keep="p")
            self.pop_until("p")

    # -- active formatting elements -----------------------------------------------------

    def formatting_count(self) -> int:
        count = 0
        for entry in reversed(self.afl):
            if entry is None:
                break
            count += 1
        return count

    def afl_find(self, name: str) -> int:
        for i in range(len(self.afl) - 1, -1, -1):
            entry = self.afl[i]
            if entry is None:
                return -1
            if entry.name == name:
                return i
        return -1

    def afl_index(self, element: _Element) -> int:
        for i in range(len(self.afl) - 1, -1, -1):
            if self.afl[i] is element:
                return i
        return -1

    def clear_to_marker(self) -> None:
        while self.afl and self.afl.pop() is not None:
            pass

    def reconstruct(self) -> None:
        afl = self.afl
        if not afl or afl[-1] is None or afl[-1].index >= 0:
            return
        i = len(afl) - 1
        while i > 0:
            entry = afl[i - 1]
            if entry is None or entry.index >= 0:
                break
            i -= 1
        self.recreated += len(afl) - i
        for j in range(i, len(afl)):
            old = afl[j]
            assert old is not None
            afl[j] = self.push_html(old.name, old.key)

    def add_formatting(self, name: str, key: str) -> None:
        """Open a formatting element; of three like it (after the last marker) the earliest
        leaves the list ("Noah's Ark"). ``key`` is the raw attribute text: html5ever
        compares attribute sets, so this may keep more entries than it does, never fewer."""
        self.reconstruct()
        first, same = -1, 0
        for i in range(len(self.afl) - 1, -1, -1):
            entry = self.afl[i]
            if entry is None:
                break
            if entry.name == name and entry.key == key:
                first, same = i, same + 1
        if same >= 3:
            del self.afl[first]
        self.afl.append(self.push_html(name, key))

    def adoption_agency(self, name: str) -> None:
        top = self.current()
        if top is not None and top.ns == _HTML and top.name == name and self.afl_index(top) < 0:
            self.pop()
            return
        for _ in range(8):
            at = self.afl_find(name)
            if at < 0:
                self.end_any(name)
                return
            element = self.afl[at]
            assert element is not None
            if element.index < 0:
                del self.afl[at]
                return
            if element.index < (self.scope[-1] if self.scope else -1):
                return
            specials = self.special
            k = bisect_right(specials, element.index)
            if k == len(specials):
                self.truncate(element.index)
                del self.afl[at]
                return
            furthest = self.stack[specials[k]]
            self._adopt(element, furthest)

    def _adopt(self, element: _Element, furthest: _Element) -> None:
        """Steps 11-19 of the adoption agency, as far as they touch the stack and the list."""
        bookmark: tuple[str, _Element] = ("replace", element)
        node_index = furthest.index
        last = furthest
        inner = 0
        while True:
            inner += 1
            node_index -= 1
            node = self.stack[node_index]
            if node is element:
                break
            at = self.afl_index(node)
            if inner > 3 and at >= 0:
                del self.afl[at]
                at = -1
            if at < 0:
                self.remove(node)
                continue
            clone = _Element(node.name, _HTML, node.key)
            self._replace_in_stack(node, clone)
            self.afl[at] = clone
            if last is furthest:
                bookmark = ("after", clone)
            last = clone
        clone = _Element(element.name, _HTML, element.key)
        kind, anchor = bookmark
        if kind == "replace":
            self.afl[self.afl_index(element)] = clone
        else:
            self.afl.insert(self.afl_index(anchor) + 1, clone)
            del self.afl[self.afl_index(element)]
        self.remove(element)
        self.insert_after(furthest, clone)

    def _replace_in_stack(self, old: _Element, new: _Element) -> None:
        new.index, new.lists = old.index, old.lists
        self.stack[old.index] = new
        old.index = -1

    # -- end tags -------------------------------------------------------------------------

    def end_any(self, name: str) -> None:
        """ "Any other end tag" in body: close the nearest such element, unless a special
        element is above it."""
        at = self.top(name)
        if at < 0 or (self.special and self.special[-1] > at):
            return
        self.implied_end(keep=name)
        self.truncate(at)

    def reset_mode(self) -> None:
        for element in reversed(self.stack):
            if element.ns != _HTML:
                continue
            name = element.name
            if name in ("td", "th"):
                self.mode = "cell"
            elif name == "tr":
                self.mode = "row"
            elif name in ("tbody", "thead", "tfoot"):
                self.mode = "table body"
            elif name == "caption":
                self.mode = "caption"
            elif name == "colgroup":
                self.mode = "column group"
            elif name == "table":
                self.mode = "table"
            elif name == "template":
                self.mode = self.template_modes[-1] if self.template_modes else "body"
            else:
                continue
            return
        self.mode = "body"


class _Flattener:
    """Feeds tokens to a :class:`_Tree` and decides which start tags html5ever gets."""

    def __init__(
        self, max_depth: int, max_formatting: int, max_recreated: int, max_fostered: int
    ) -> None:
        self.tree = _Tree()
        self.max_depth = max_depth
        self.max_formatting = max_formatting
        self.max_recreated = max_recreated
        self.max_fostered = max_fostered
        #: End tags to put before the token just taken (html5ever must see them too).
        self.inserted: list[str] = []
        #: Whether the start tag being taken ends with "/>" (it matters in SVG and MathML).
        self.self_closing = False
        self.fostered = 0

    def _close_table(self) -> bool:
        """Count one token for foster parenting; past the limit, close the table first."""
        self.fostered += 1
        if self.fostered <= self.max_fostered or not self.tree.in_table_scope("table"):
            return False
        self.inserted.append("</table>")
        self.html_end("table")
        return True

    def _purge(self) -> None:
        """Past the re-creation budget, end the formatting elements waiting to be re-created
        (an end tag takes one that is no longer open off the list)."""
        tree = self.tree
        afl = tree.afl
        i = len(afl) - 1
        while i >= 0 and (entry := afl[i]) is not None:
            if entry.index < 0 and tree.afl_find(entry.name) == i:
                top = tree.current()
                if not (
                    top is not None
                    and top.ns == _HTML
                    and top.name == entry.name
                    and tree.afl_index(top) < 0
                ):
                    self.inserted.append(f"</{entry.name}>")
                    self.end(entry.name)
            i = min(i, len(afl)) - 1

    # -- dispatch -------------------------------------------------------------------------

    def foreign(self, start: bool, name: str) -> bool:
        """Whether html5ever takes a token by the rules for foreign content."""
        top = self.tree.current()
        if top is None or top.ns == _HTML:
            return False
        if top.ns == _MATH and top.name in _MATH_TEXT_POINTS:
            return not start or name in ("mglyph", "malignmark")
        if top.ns == _SVG and top.name in _SVG_HTML_POINTS:
            return not start
        if top.ns == _MATH and top.name == "annotation-xml" and start:
            return name != "svg" and not top.point
        return True

    def text(self, html: str, start: int, end: int) -> None:
        tree = self.tree
        if tree.recreated > self.max_recreated:
            self._purge()
        top = tree.stack[-1] if tree.stack else None
        if top is not None and top.ns:
            if (
                not (top.ns == _MATH and top.name in _MATH_TEXT_POINTS)
                and not (top.ns == _SVG and top.name in _SVG_HTML_POINTS)
                and not (top.name == "annotation-xml" and top.point)
            ):
                return
        mode = tree.mode
        if mode in _TABLE_MODES and tree.current_is(_TABLE_OUTER):
            if not html[start:end].strip(_WS):
                return
            self._close_table()  # text goes before the table, re-creating formatting
        elif mode == "column group":
            # Non-space text ends the column group, then goes to the table (foster parented).
            if not html[start:end].strip(_WS) or not tree.current_is(("colgroup",)):
                return
            tree.pop()
            tree.mode = "table"
        if tree.afl:
            tree.reconstruct()

    def start(self, name: str, attrs: str) -> str | None:
        """Take a start tag: None drops it, else the tokenizer state that follows."""
        tree = self.tree
        if len(tree.stack) >= self.max_depth:
            return None
        if name in _FORMATTING and name != "a" and tree.formatting_count() >= self.max_formatting:
            return None
        if tree.recreated > self.max_recreated:
            self._purge()
        if tree.stack and tree.stack[-1].ns and self.foreign(True, name):
            if name in _BREAKOUT or (
                name == "font" and {"color", "face", "size"} & _attributes(attrs).keys()
            ):
                while tree.stack and not self._html_or_point(tree.stack[-1]):
                    tree.pop()
                return self.html_start(name, attrs)
            top = tree.stack[-1]
            if not self.self_closing:
                tree.push(_Element(name, top.ns, point=self._point(name, top.ns, attrs)))
            return "data"
        return self.html_start(name, attrs)

    def end(self, name: str) -> None:
        stack = self.tree.stack
        if stack and stack[-1].ns and self.foreign(False, name):
            if name in ("br", "p"):
                tree = self.tree
                while tree.stack and not self._html_or_point(tree.stack[-1]):
                    tree.pop()
                self.html_end(name)
                return
            self.foreign_end(name)
            return
        self.html_end(name)

    @staticmethod
    def _html_or_point(element: _Element) -> bool:
        if element.ns == _HTML:
            return True
        points = _MATH_TEXT_POINTS if element.ns == _MATH else _SVG_HTML_POINTS
        return element.name in points

    @staticmethod
    def _point(name: str, ns: int, attrs: str) -> bool:
        if ns != _MATH or name != "annotation-xml":
            return False
        encoding = _attributes(attrs).get("encoding", "").lower()
        return encoding in ("text/html", "application/xhtml+xml")

    def foreign_end(self, name: str) -> None:
        tree = self.tree
        # html5ever walks down from the current node: a foreign element of that name closes
        # (with everything above it); reaching an HTML element hands the tag to the HTML
        # rules; reaching the root ignores it.
        html_top = tree.html[-1] if tree.html else -1
        match = max(tree.top(f"{_SVG} {name}"), tree.top(f"{_MATH} {name}"))
        if match > html_top:
            tree.truncate(match)
        elif html_top >= 0:
            self.html_end(name)

    # -- start tags by insertion mode -----------------------------------------------------

    def html_start(self, name: str, attrs: str) -> str:
        mode = self.tree.mode
        if mode in _TABLE_MODES and name not in _IN_TABLE and self._close_table():
            mode = self.tree.mode
        if mode == "body":
            return self.body_start(name, attrs)
        if mode == "template":
            return self.template_start(name, attrs)
        if mode == "column group":
            return self.column_group_start(name, attrs)
        if mode == "caption":
            return self.caption_start(name, attrs)
        if mode == "cell":
            return self.cell_start(name, attrs)
        if mode == "row":
            return self.row_start(name, attrs)
        if mode == "table body":
            return self.table_body_start(name, attrs)
        return self.table_start(name, attrs)

    def body_start(self, name: str, attrs: str) -> str:
        tree = self.tree
        if name not in _BODY_START_RULES:
            # Most tags (span, em's cousins, custom elements): "any other start tag".
            if tree.afl:
                tree.reconstruct()
            tree.push_html(name)
            return "data"
        if name in ("html", "body", "frameset", "head", "base", "basefont", "bgsound", "link"):
            return "data"
        if name in ("meta", "param", "source", "track") or name in _TABLE_PARTS:
            return "data"
        if name in ("noframes", "style", "title", "script", "template"):
            return self.head_start(name)
        if name in _CLOSE_P:
            tree.close_p()
            tree.push_html(name)
        elif name in _HEADINGS:
            tree.close_p()
            if tree.current_is(_HEADINGS):
                tree.pop()
            tree.push_html(name)
        elif name in ("pre", "listing"):
            tree.close_p()
            tree.push_html(name)
        elif name == "form":
            if tree.form is not None and tree.top("template") < 0:
                return "data"
            tree.close_p()
            form = tree.push_html(name)
            if tree.top("template") < 0:
                tree.form = form
        elif name in ("li", "dd", "dt"):
            targets = ("li",) if name == "li" else ("dd", "dt")
            found = max(tree.top(t) for t in targets)
            if found >= 0 and not (tree.list_stop and tree.list_stop[-1] > found):
                closing = tree.stack[found].name
                tree.implied_end(keep=closing)
                tree.pop_until(closing)
            tree.close_p()
            tree.push_html(name)
        elif name == "plaintext":
            tree.close_p()
            tree.push_html(name)
            return "plaintext"
        elif name == "button":
            if tree.in_scope("button"):
                tree.implied_end()
                tree.pop_until("button")
            tree.reconstruct()
            tree.push_html(name)
        elif name == "a":
            at = tree.afl_find("a")
            if at >= 0:
                old = tree.afl[at]
                tree.adoption_agency("a")
                if old is not None:
                    index = tree.afl_index(old)
                    if index >= 0:
                        del tree.afl[index]
                    if old.index >= 0:
                        tree.remove(old)
            tree.add_formatting(name, _attribute_key(attrs))
        elif name == "nobr":
            tree.reconstruct()
            if tree.in_scope("nobr"):
                tree.adoption_agency("nobr")
                tree.reconstruct()
            tree.add_formatting(name, _attribute_key(attrs))
        elif name in _FORMATTING:
            tree.add_formatting(name, _attribute_key(attrs))
        elif name in ("applet", "marquee", "object"):
            tree.reconstruct()
            tree.push_html(name)
            tree.afl.append(None)
        elif name == "table":
            tree.close_p()
            tree.push_html(name)
            tree.mode = "table"
        elif name in _VOID_RECONSTRUCT or name == "image":
            tree.reconstruct()
        elif name == "input":
            if tree.in_scope("select"):
                tree.pop_until("select")
            tree.reconstruct()
        elif name == "hr":
            tree.close_p()
            if tree.in_scope("select"):
                tree.implied_end()
        elif name == "textarea":
            tree.push_html(name)
            return "rcdata"
        elif name == "xmp":
            tree.close_p()
            tree.reconstruct()
            tree.push_html(name)
            return "rawtext"
        elif name in ("iframe", "noembed", "noscript"):
            tree.push_html(name)
            return "rawtext"
        elif name == "select":
            if tree.in_scope("select"):
                tree.pop_until("select")
            else:
                tree.reconstruct()
                tree.push_html(name)
        elif name in ("option", "optgroup"):
            if tree.in_scope("select"):
                if name == "option":
                    tree.implied_end(keep="optgroup")
                else:
                    tree.implied_end()
            elif tree.current_is(("option",)):
                tree.pop()
            tree.reconstruct()
            tree.push_html(name)
        elif name in ("rb", "rtc", "rp", "rt"):
            if tree.in_scope("ruby"):
                tree.implied_end(keep="rtc" if name in ("rp", "rt") else "")
            tree.push_html(name)
        elif name in ("math", "svg"):
            tree.reconstruct()
            if not self.self_closing:
                tree.push(_Element(name, _MATH if name == "math" else _SVG))
        else:
            tree.reconstruct()
            tree.push_html(name)
        return "data"

    def head_start(self, name: str) -> str:
        tree = self.tree
        tree.push_html(name)
        if name == "template":
            tree.afl.append(None)
            tree.mode = "template"
            tree.template_modes.append("template")
            return "data"
        if name == "script":
            return "script"
        return "rcdata" if name == "title" else "rawtext"

    def template_start(self, name: str, attrs: str) -> str:
        tree = self.tree
        if name in ("base", "basefont", "bgsound", "link", "meta"):
            return "data"
        if name in ("noframes", "script", "style", "template", "title"):
            return self.head_start(name)
        mode = _TEMPLATE_MODES.get(name, "body")
        if tree.template_modes:
            tree.template_modes[-1] = mode
        tree.mode = mode
        return self.html_start(name, attrs)

    def table_start(self, name: str, attrs: str) -> str:
        tree = self.tree
        if name == "caption":
            tree.pop_until_current(_TABLE_CONTEXT)
            tree.afl.append(None)
            tree.push_html(name)
            tree.mode = "caption"
        elif name == "colgroup":
            tree.pop_until_current(_TABLE_CONTEXT)
            tree.push_html(name)
            tree.mode = "column group"
        elif name == "col":
            tree.pop_until_current(_TABLE_CONTEXT)
            tree.push_html("colgroup")
            tree.mode = "column group"
            return self.column_group_start(name, attrs)
        elif name in ("tbody", "tfoot", "thead"):
            tree.pop_until_current(_TABLE_CONTEXT)
            tree.push_html(name)
            tree.mode = "table body"
        elif name in ("td", "th", "tr"):
            tree.pop_until_current(_TABLE_CONTEXT)
            tree.push_html("tbody")
            tree.mode = "table body"
            return self.table_body_start(name, attrs)
        elif name == "table":
            if tree.in_table_scope("table"):
                tree.pop_until("table")
                tree.reset_mode()
                return self.html_start(name, attrs)
        elif name in ("style", "script", "template"):
            return self.head_start(name)
        elif name == "form":
            if tree.form is None and tree.top("template") < 0:
                tree.form = _Element(name, _HTML)  # inserted and popped at once
        elif name == "input":
            if _attributes(attrs).get("type", "").lower() != "hidden":
                return self.body_start(name, attrs)
        else:
            return self.body_start(name, attrs)
        return "data"

    def table_body_start(self, name: str, attrs: str) -> str:
        tree = self.tree
        if name == "tr":
            tree.pop_until_current(_BODY_CONTEXT)
            tree.push_html(name)
            tree.mode = "row"
        elif name in ("th", "td"):
            tree.pop_until_current(_BODY_CONTEXT)
            tree.push_html("tr")
            tree.mode = "row"
            return self.row_start(name, attrs)
        elif name in ("caption", "col", "colgroup", "tbody", "tfoot", "thead"):
            if tree.in_table_scope("table", "tbody", "tfoot"):
                tree.pop_until_current(_BODY_CONTEXT)
                if tree.stack:
                    tree.pop()
                tree.mode = "table"
                return self.table_start(name, attrs)
        else:
            return self.table_start(name, attrs)
        return "data"

    def row_start(self, name: str, attrs: str) -> str:
        tree = self.tree
        if name in ("th", "td"):
            tree.pop_until_current(_ROW_CONTEXT)
            tree.push_html(name)
            tree.mode = "cell"
            tree.afl.append(None)
        elif name in ("caption", "col", "colgroup", "tbody", "tfoot", "thead", "tr"):
            if tree.in_table_scope("tr"):
                tree.pop_until_current(_ROW_CONTEXT)
                tree.pop()
                tree.mode = "table body"
                return self.table_body_start(name, attrs)
        else:
            return self.table_start(name, attrs)
        return "data"

    def cell_start(self, name: str, attrs: str) -> str:
        tree = self.tree
        if name in _CELL_SECTIONS:
            if tree.in_table_scope("td", "th"):
                self.close_cell()
                tree.mode = "row"
                return self.row_start(name, attrs)
            return "data"
        return self.body_start(name, attrs)

    def caption_start(self, name: str, attrs: str) -> str:
        tree = self.tree
        if name in _CELL_SECTIONS:
            if tree.in_table_scope("caption"):
                tree.implied_end()
                tree.pop_until("caption")
                tree.clear_to_marker()
                tree.mode = "table"
                return self.table_start(name, attrs)
            return "data"
        return self.body_start(name, attrs)

    def column_group_start(self, name: str, attrs: str) -> str:
        tree = self.tree
        if name == "col":
            return "data"
        if name == "template":
            return self.head_start(name)
        if name == "html":
            return "data"
        if tree.current_is(("colgroup",)):
            tree.pop()
            tree.mode = "table"
            return self.table_start(name, attrs)
        return "data"

    def close_cell(self) -> None:
        tree = self.tree
        tree.implied_end()
        while tree.stack and not tree.current_is(("td", "th")):
            tree.pop()
        if tree.stack:
            tree.pop()
        tree.clear_to_marker()

    # -- end tags by insertion mode -------------------------------------------------------

    def html_end(self, name: str) -> None:
        tree = self.tree
        mode = tree.mode
        if name == "template":
            self.template_end()
        elif mode == "body" or mode == "template":
            if mode == "template":
                return  # "in template": other end tags are ignored
            self.body_end(name)
        elif mode == "caption":
            if name in ("caption", "table"):
                if tree.in_table_scope("caption"):
                    tree.implied_end()
                    tree.pop_until("caption")
                    tree.clear_to_marker()
                    tree.mode = "table"
                    if name == "table":
                        self.html_end(name)
            elif name not in _set("body col colgroup html tbody td tfoot th thead tr"):
                self.body_end(name)
        elif mode == "cell":
            if name in ("td", "th"):
                if tree.in_table_scope(name):
                    tree.implied_end()
                    tree.pop_until(name)
                    tree.clear_to_marker()
                    tree.mode = "row"
            elif name in ("table", "tbody", "tfoot", "thead", "tr"):
                if tree.in_table_scope(name):
                    self.close_cell()
                    tree.mode = "row"
                    self.html_end(name)
            elif name not in ("body", "caption", "col", "colgroup", "html"):
                self.body_end(name)
        elif mode == "column group":
            if name == "colgroup":
                if tree.current_is(("colgroup",)):
                    tree.pop()
                    tree.mode = "table"
            elif name != "col" and tree.current_is(("colgroup",)):
                tree.pop()
                tree.mode = "table"
                self.html_end(name)
        elif mode == "row":
            if name == "tr":
                if tree.in_table_scope("tr"):
                    tree.pop_until_current(_ROW_CONTEXT)
                    tree.pop()
                    tree.mode = "table body"
            elif name == "table":
                if tree.in_table_scope("tr"):
                    tree.pop_until_current(_ROW_CONTEXT)
                    tree.pop()
                    tree.mode = "table body"
                    self.html_end(name)
            elif name in ("tbody", "tfoot", "thead"):
                if tree.in_table_scope(name) and tree.in_table_scope("tr"):
                    tree.pop_until_current(_ROW_CONTEXT)
                    tree.pop()
                    tree.mode = "table body"
                    self.html_end(name)
            elif name not in ("body", "caption", "col", "colgroup", "html", "td", "th"):
                self.table_end(name)
        elif mode == "table body":
            if name in ("tbody", "tfoot", "thead"):
                if tree.in_table_scope(name):
                    tree.pop_until_current(_BODY_CONTEXT)
                    tree.pop()
                    tree.mode = "table"
            elif name == "table":
                if tree.in_table_scope("table", "tbody", "tfoot"):
                    tree.pop_until_current(_BODY_CONTEXT)
                    if tree.stack:
                        tree.pop()
                    tree.mode = "table"
                    self.html_end(name)
            elif name not in _set("body caption col colgroup html td th tr"):
                self.table_end(name)
        else:
            self.table_end(name)

    def table_end(self, name: str) -> None:
        tree = self.tree
        if name == "table":
            if tree.in_table_scope("table"):
                tree.pop_until("table")
                tree.reset_mode()
        elif name not in _set("body caption col colgroup html tbody td tfoot th thead tr"):
            self.body_end(name)

    def template_end(self) -> None:
        tree = self.tree
        if tree.top("template") < 0:
            return
        tree.implied_end(_THOROUGH)
        tree.pop_until("template")
        tree.clear_to_marker()
        if tree.template_modes:
            tree.template_modes.pop()
        tree.reset_mode()

    def body_end(self, name: str) -> None:
        tree = self.tree
        if name not in _BODY_END_RULES:
            tree.end_any(name)
        elif name in _BLOCK_ENDS:
            if tree.in_scope(name):
                tree.implied_end()
                tree.pop_until(name)
        elif name == "form":
            if tree.top("template") < 0:
                form, tree.form = tree.form, None
                bound = tree.scope[-1] if tree.scope else -1
                if form is None or form.index < 0 or form.index < bound:
                    return
                tree.implied_end()
                if form.index >= 0:
                    tree.remove(form)
            elif tree.in_scope("form"):
                tree.implied_end()
                tree.pop_until("form")
        elif name == "p":
            if tree.in_scope("p", tree.button_scope):
                tree.implied_end(keep="p")
                tree.pop_until("p")
        elif name == "li":
            if tree.in_scope("li", tree.list_scope):
                tree.implied_end(keep="li")
                tree.pop_until("li")
        elif name in ("dd", "dt"):
            if tree.in_scope(name):
                tree.implied_end(keep=name)
                tree.pop_until(name)
        elif name in _HEADINGS:
            bound = tree.scope[-1] if tree.scope else -1
            found = max(tree.top(h) for h in _HEADINGS)
            if found > bound:
                tree.implied_end()
                tree.truncate(found)
        elif name in _FORMATTING:
            tree.adoption_agency(name)
        elif name in ("applet", "marquee", "object"):
            if tree.in_scope(name):
                tree.implied_end()
                tree.pop_until(name)
                tree.clear_to_marker()
        elif name == "br":
            tree.reconstruct()
        elif name in ("body", "html"):
            return
        else:
            tree.end_any(name)


def flatten(
    html: str,
    max_depth: int = MAX_NESTING,
    max_formatting: int = MAX_FORMATTING,
    max_recreated: int = MAX_RECREATED,
    max_fostered: int = MAX_FOSTERED,
) -> str:
    """``html`` as an HTML5 parser would build it at most ``max_depth`` elements deep.

    Start tags past that depth (or past ``max_formatting`` open formatting elements) are
    dropped; a table that keeps taking misplaced content, or formatting elements re-created
    over and over, are closed with an end tag inserted for them. Unchanged when none of
    that happens (always, for fewer tags than ``max_depth``).
    """
    if html.count("<") <= max_depth:
        return html
    model = _Flattener(max_depth, max_formatting, max_recreated, max_fostered)
    kept: list[str] = []
    emitted = pos = 0
    length = len(html)
    # An iterator continues where its last match ended (faster than search(html, pos));
    # a new one starts after raw text and comments.
    tokens = _TOKEN.finditer(html)
    while pos < length:
        token = next(tokens, None)
        at = length if token is None else token.start()
        if at > pos:
            model.text(html, pos, at)
            if model.inserted:
                kept += (html[emitted:pos], *model.inserted)
                model.inserted.clear()
                emitted = pos
        if token is None:
            break
        end_tag, name, attrs, _, comment, other, cut = token.groups()
        pos = token.end()
        if name is not None:
            name = name.lower()
            if end_tag:
                model.end(name)
                state: str | None = "data"
            else:
                # "/>" ends a self-closing tag unless the "/" is part of an unquoted value.
                model.self_closing = attrs.endswith("/") and token.end(4) == token.end(3)
                state = model.start(name, attrs)
            if model.inserted:
                kept += (html[emitted:at], *model.inserted)
                model.inserted.clear()
                emitted = at
            if state is None:
                kept.append(html[emitted:at])
                emitted = pos
            elif state == "script":
                pos = _script_end(html, pos)
                tokens = _TOKEN.finditer(html, pos)
            elif state == "plaintext":
                break
            elif state != "data":
                found = _raw_end(name).search(html, pos)
                pos = found.start() if found is not None else length
                tokens = _TOKEN.finditer(html, pos)
        elif comment:
            # html5ever ends a comment at its earliest possible end ("<!-->" included).
            if html.startswith(">", pos):
                pos += 1
            elif html.startswith("->", pos):
                pos += 2
            else:
                found = _COMMENT_END.search(html, pos)
                pos = found.end() if found is not None else length
            tokens = _TOKEN.finditer(html, pos)
        elif other:
            top = model.tree.current()
            if (
                other == "!"
                and top is not None
                and top.ns != _HTML
                and html.startswith("[CDATA[", pos)
            ):
                close = html.find("]]>", pos)
                pos = close + 3 if close >= 0 else length
            elif other == "/" and html.startswith(">", pos):
                pos += 1  # "</>" is nothing at all
            elif other == "/" and pos == length:
                break  # "</" at the end is text
            elif other == "/" and html[pos].isascii() and html[pos].isalpha():
                break  # an end tag cut off by the end of the input
            else:
                close = html.find(">", pos)  # a bogus comment, a DOCTYPE
                pos = close + 1 if close >= 0 else length
            tokens = _TOKEN.finditer(html, pos)
        else:
            assert cut is not None
            break  # a start tag cut off by the end: html5ever drops it, nothing follows
    if not kept:
        return html
    kept.append(html[emitted:])
    return "".join(kept)


def _attributes(attrs: str) -> dict[str, str]:
    """A tag's attributes by (lower-case) name; the first of two with one name wins."""
    found: dict[str, str] = {}
    for match in _ATTRIBUTE.finditer(attrs):
        name, value = match.group(1).lower(), match.group(2) or ""
        if value[:1] in ("'", '"'):
            value = value[1:-1]
        found.setdefault(name, value)
    return found


def _attribute_key(attrs: str) -> str:
    """What makes two formatting elements alike for "Noah's Ark": the same attributes in
    any order (character references are left as written, so alike ones may look unlike)."""
    if not attrs.strip(_WS + "/"):
        return ""
    return repr(sorted(_attributes(attrs).items()))


def _script_end(html: str, pos: int) -> int:
    """Where the ``</script`` that ends script data starting at ``pos`` begins."""
    state = _SCRIPT_DATA
    length = len(html)
    while True:
        found = state.search(html, pos)
        if found is None:
            return length
        text = found.group().lower()
        if state is _SCRIPT_DATA:
            if text.startswith("</"):
                return found.start()
            state, pos = _SCRIPT_ESCAPED, found.start() + 2  # "<!--": its dashes count
        elif state is _SCRIPT_ESCAPED:
            if text == "-->":
                state, pos = _SCRIPT_DATA, found.end()
            elif text.startswith("</"):
                return found.start()
            else:
                state, pos = _SCRIPT_DOUBLE, found.end() - 1
        elif text == "-->":
            state, pos = _SCRIPT_DATA, found.end()
        else:
            state, pos = _SCRIPT_ESCAPED, found.end() - 1
