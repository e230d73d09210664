"""The htmltmpl dialect, tag by tag, compiled to Jinja2 (planet.htmltmpl)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planet.htmltmpl import TemplateError, compile_file, compile_text
from planet.templating import link, text


def render(source: str, **values: Any) -> str:
    return compile_text(source, "t.tmpl").render(values)


# --- TMPL_VAR ------------------------------------------------------------------------------


def test_var_prints_raw_by_default_as_venus_did() -> None:
    assert render("<p><TMPL_VAR content></p>", content="<b>hi</b>") == "<p><b>hi</b></p>"


def test_var_escape_html_url_none() -> None:
    values = {"v": "<a href='x'>&</a>"}
    assert render('<TMPL_VAR v ESCAPE="HTML">', **values) == (
        "&lt;a href=&#x27;x&#x27;&gt;&amp;&lt;/a&gt;"
    )
    assert render("<TMPL_VAR v ESCAPE=URL>", **values) == "%3Ca+href%3D%27x%27%3E%26%3C%2Fa%3E"
    assert render('<TMPL_VAR v ESCAPE="NONE">', **values) == values["v"]
    assert render("<TMPL_VAR v escape='html'>", v="<") == "&lt;"


def test_escaped_text_is_not_escaped_twice() -> None:
    # Names, ids and links are held escaped: ESCAPE="HTML" leaves them, URL quotes the text.
    name = text("Ben & Jerry <3")
    assert render("<TMPL_VAR n>", n=name) == "Ben &amp; Jerry &lt;3"
    assert render('<TMPL_VAR n ESCAPE="HTML">', n=name) == "Ben &amp; Jerry &lt;3"
    assert render('<TMPL_VAR n ESCAPE="URL">', n=name) == "Ben+%26+Jerry+%3C3"
    url = link("http://x.example/?a=1&b=2")
    assert render('<a href="<TMPL_VAR u ESCAPE="HTML">">', u=url) == (
        '<a href="http://x.example/?a=1&amp;b=2">'
    )


def test_var_default_name_attribute_and_missing() -> None:
    assert render('<TMPL_VAR nope DEFAULT="none here">') == "none here"
    assert render("[<TMPL_VAR nope>]") == "[]"
    assert render('<TMPL_VAR NAME="x">', x=3) == "3"
    assert render("<TMPL_VAR x DEFAULT=d>", x="") == "d"


def test_names_are_case_insensitive() -> None:
    assert render("<tmpl_var Title>|<TMPL_VAR TITLE>", title="t") == "t|t"
    out = render("<TMPL_LOOP Items><TMPL_VAR Title></TMPL_LOOP>", items=[{"title": "a"}])
    assert out == "a"


def test_comment_form_of_tags() -> None:
    assert render("<!-- TMPL_VAR x -->", x="y") == "y"


# --- TMPL_IF / TMPL_UNLESS / TMPL_ELSE --------------------------------------------------


def test_if_else_unless() -> None:
    source = "<TMPL_IF a>A<TMPL_ELSE>not A</TMPL_IF>,<TMPL_UNLESS a>U<TMPL_ELSE>not U</TMPL_UNLESS>"
    assert render(source, a="x") == "A,not U"
    assert render(source, a="") == "not A,U"
    assert render(source) == "not A,U"
    assert render(source, a=[]) == "not A,U"
    assert render(source, a=[{}]) == "A,not U"


def test_nested_ifs() -> None:
    source = (
        "<TMPL_IF a><TMPL_IF b>ab<TMPL_ELSE>a</TMPL_IF>"
        "<TMPL_ELSE><TMPL_UNLESS b>-</TMPL_UNLESS></TMPL_IF>"
    )
    assert [render(source, a=a, b=b) for a, b in [(1, 1), (1, 0), (0, 0), (0, 1)]] == [
        "ab",
        "a",
        "-",
        "",
    ]


# --- TMPL_LOOP -----------------------------------------------------------------------------


def test_loop_variables() -> None:
    source = (
        "<TMPL_LOOP items><TMPL_VAR __PASS__>"
        "<TMPL_IF __FIRST__>F</TMPL_IF><TMPL_IF __LAST__>L</TMPL_IF>"
        "<TMPL_IF __INNER__>I</TMPL_IF><TMPL_IF __ODD__>o</TMPL_IF><TMPL_IF __EVEN__>e</TMPL_IF>"
        "<TMPL_VAR x> </TMPL_LOOP>"
    )
    items = [{"x": "a"}, {"x": "b"}, {"x": "c"}, {"x": "d"}]
    assert render(source, items=items) == "1Foa 2Ieb 3Ioc 4Led "
    assert render(source, items=[{"x": "z"}]) == "1FLoz "
    assert render(source, items=[]) == ""
    assert render(source) == ""


def test_loop_names_fall_back_to_the_enclosing_scopes() -> None:
    source = (
        "<TMPL_LOOP outer><TMPL_LOOP inner>"
        "<TMPL_VAR name>/<TMPL_VAR group>/<TMPL_VAR planet>;</TMPL_LOOP></TMPL_LOOP>"
    )
    out = render(
        source,
        planet="P",
        outer=[{"group": "g1", "inner": [{"name": "a"}, {"name": "b"}]}, {"group": "g2"}],
    )
    assert out == "a/g1/P;b/g1/P;"


def test_inner_loop_variables_are_the_inner_loops() -> None:
    source = (
        "<TMPL_LOOP o><TMPL_LOOP i><TMPL_VAR __PASS__></TMPL_LOOP>"
        "<TMPL_IF __LAST__>.</TMPL_IF></TMPL_LOOP>"
    )
    assert render(source, o=[{"i": [{}, {}]}, {"i": [{}]}]) == "121."


def test_item_value_hides_a_global_of_the_same_name() -> None:
    source = "<TMPL_LOOP items>[<TMPL_VAR title>]</TMPL_LOOP>"
    assert render(source, title="global", items=[{"title": ""}, {}]) == "[][global]"


# --- comments, includes, literal text ------------------------------------------------------


def test_comment_lines() -> None:
    source = "a\n### a comment\nb ### trailing comment\n###\nc"
    assert render(source) == "a\n\nb \n\nc"


def test_jinja_syntax_in_the_page_is_literal() -> None:
    source = "{{ x }} {% if %} {# c #} <TMPL_VAR x>"
    assert render(source, x="1") == "{{ x }} {% if %} {# c #} 1"


def test_include(tmp_path: Path) -> None:
    (tmp_path / "header.tmpl").write_text("<h1><TMPL_VAR name></h1>\n")
    sub = tmp_path / "parts"
    sub.mkdir()
    (sub / "item.tmpl").write_text('<TMPL_INCLUDE NAME="../header.tmpl"><TMPL_VAR x>')
    main = tmp_path / "index.html.tmpl"
    main.write_text(
        '<TMPL_INCLUDE "header.tmpl"><TMPL_LOOP items><TMPL_INCLUDE parts/item.tmpl></TMPL_LOOP>'
    )
    out = compile_file(str(main)).render({"name": "N", "items": [{"x": 1}, {"x": 2}]})
    assert out == "<h1>N</h1>\n<h1>N</h1>\n1<h1>N</h1>\n2"


def test_include_from_the_search_path(tmp_path: Path) -> None:
    other = tmp_path / "common"
    other.mkdir()
    (other / "foot.tmpl").write_text("foot")
    main = tmp_path / "theme" / "index.html.tmpl"
    main.parent.mkdir()
    main.write_text("<TMPL_INCLUDE foot.tmpl>")
    assert compile_file(str(main), [str(other)]).render({}) == "foot"


# --- errors name the file and the line -----------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "what"),
    [
        ("a\n<TMPL_IF x>\nb\n", 2, "<TMPL_IF> is never closed"),
        ("a\nb\n</TMPL_LOOP>", 3, "</TMPL_LOOP> does not close no block"),
        ("<TMPL_IF x>\n</TMPL_LOOP>", 2, "</TMPL_LOOP> does not close <TMPL_IF>"),
        ("\n\n<TMPL_ELSE>", 3, "<TMPL_ELSE> outside"),
        ("<TMPL_VAR>", 1, "<TMPL_VAR> has no name"),
        ("x\n<TMPL_BOGUS y>", 2, "unknown tag <TMPL_BOGUS>"),
        ('<TMPL_VAR x ESCAPE="JS">', 1, "ESCAPE='JS'"),
        ("\n<TMPL_INCLUDE missing.tmpl>", 2, "<TMPL_INCLUDE missing.tmpl>: file not found"),
    ],
)
def test_errors_carry_file_and_line(source: str, line: int, what: str) -> None:
    with pytest.raises(TemplateError) as caught:
        compile_text(source, "/themes/x/index.html.tmpl")
    message = str(caught.value)
    assert message.startswith(f"/themes/x/index.html.tmpl:{line}: "), message
    assert what in message


def test_error_in_an_include_names_the_included_file(tmp_path: Path) -> None:
    (tmp_path / "part.tmpl").write_text("ok\n\n<TMPL_LOOP x>\n")
    main = tmp_path / "index.html.tmpl"
    main.write_text("<TMPL_INCLUDE part.tmpl>")
    with pytest.raises(TemplateError, match=r"part\.tmpl:3: <TMPL_LOOP> is never closed"):
        compile_file(str(main))


def test_include_cycle_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.tmpl").write_text("<TMPL_INCLUDE b.tmpl>")
    (tmp_path / "b.tmpl").write_text("\n<TMPL_INCLUDE a.tmpl>")
    with pytest.raises(TemplateError, match=r"b\.tmpl:2: <TMPL_INCLUDE a\.tmpl> includes itself"):
        compile_file(str(tmp_path / "a.tmpl"))
