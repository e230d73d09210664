"""html5ever's stack of open elements and list of active formatting elements, as indexes:
O(1) scope checks instead of stack walks."""

from __future__ import annotations

from bisect import bisect_right

_HTML, _SVG, _MATH = 0, 1, 2


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
