"""html5ever's tree construction rules, by insertion mode, as far as they decide the depth of
the tree: which start tags open an element, which end tags close which."""

from __future__ import annotations

from planet.nesting._tokens import _WS, _attribute_key, _attributes
from planet.nesting._tree import (
    _BLOCK_ENDS,
    _BODY_CONTEXT,
    _BODY_END_RULES,
    _BODY_START_RULES,
    _BREAKOUT,
    _CELL_SECTIONS,
    _CLOSE_P,
    _FORMATTING,
    _HEADINGS,
    _HTML,
    _IN_TABLE,
    _MATH,
    _MATH_TEXT_POINTS,
    _ROW_CONTEXT,
    _SVG,
    _SVG_HTML_POINTS,
    _TABLE_CONTEXT,
    _TABLE_MODES,
    _TABLE_OUTER,
    _TABLE_PARTS,
    _TEMPLATE_MODES,
    _THOROUGH,
    _VOID_RECONSTRUCT,
    _Element,
    _set,
    _Tree,
)


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
