"""fs_guard.fsconf.fsxml reproduces FreeSWITCH's XML preprocessor (src/switch_xml.c, preprocess()).

Each test encodes one rule of the C code, because install's proof ("the screen runs
first") and every audit finding are only as right as this reading of the configuration.
"""

from __future__ import annotations

import pytest

from fs_guard.fsconf import fsxml
from fstree import FsTree


def top(tree: FsTree, body: str) -> None:
    tree.write("freeswitch.xml", f'<document type="freeswitch/xml">\n{body}</document>\n')


@pytest.fixture
def tree(tmp_path):
    return FsTree(tmp_path / "conf")


def names(tree: FsTree):
    root = fsxml.parse(fsxml.preprocess(str(tree.root)))
    return [e.get("name") for e in root.iter() if e.tag == "x"]


def test_relative_include_is_taken_from_the_including_files_directory(tree):
    top(tree, '<X-PRE-PROCESS cmd="include" data="a/outer.xml"/>\n')
    tree.write("a/outer.xml", '<include>\n<x name="outer"/>\n<X-PRE-PROCESS cmd="include" data="inner/*.xml"/>\n</include>\n')
    tree.write("a/inner/one.xml", '<x name="a/inner"/>\n')
    tree.write("inner/one.xml", '<x name="top-level inner: must not be read"/>\n')
    assert names(tree) == ["outer", "a/inner"]


def test_glob_matches_are_included_in_sorted_order_each_in_place_of_the_line(tree):
    top(tree, '<x name="before"/>\n<X-PRE-PROCESS cmd="include" data="d/*.xml"/>\n<x name="after"/>\n')
    for name in ("zz", "00", "m"):
        tree.write(f"d/{name}.xml", f'<x name="{name}"/>\n')
    tree.write("d/not-xml.txt", '<x name="txt"/>\n')
    assert names(tree) == ["before", "00", "m", "zz", "after"]


def test_variables_expand_with_the_value_set_so_far(tree):
    top(
        tree,
        '<x name="$${v}"/>\n'
        '<X-PRE-PROCESS cmd="set" data="v = one"/>\n'
        '<x name="$${v}"/>\n'
        '<X-PRE-PROCESS cmd="set" data="w=$${v}-two"/>\n'
        '<x name="$${w}|$${local_ip_v4}|$${conf_dir}"/>\n',
    )
    doc = fsxml.preprocess(str(tree.root))
    assert names(tree) == ["", "one", f"one-two|$${{local_ip_v4}}|{tree.root}"]
    assert doc.variables["v"] == "one"  # spaces around "=" dropped, as switch_xml.c does
    assert doc.set_at["w"] == fsxml.Origin(str(tree.path("freeswitch.xml")), 5)


def test_include_tags_xml_declarations_and_whole_directive_lines_are_dropped(tree):
    top(tree, '<X-PRE-PROCESS cmd="include" data="f.xml"/>\n')
    tree.write(
        "f.xml",
        '<?xml version="1.0"?>\n<include><x name="same line as include: dropped"/>\n'
        '<x name="kept"/>\n<x name="dropped too"/><X-PRE-PROCESS cmd="set" data="a=b"/>\n</include>\n',
    )
    assert names(tree) == ["kept"]


def test_a_directive_inside_an_xml_comment_still_runs(tree):
    # vars.xml says it: "YOU CAN NOT COMMENT OUT AN X-PRE-PROCESS line"
    top(tree, '<!--\n<X-PRE-PROCESS cmd="set" data="pw=1234"/>\n-->\n<x name="$${pw}"/>\n')
    assert names(tree) == ["1234"]


def test_hash_comment_commands(tree):
    top(tree, '<!--#set "k=v"-->\n<!--#include "f.xml"-->\n<!--#comment\nnot XML at all <<<\n-->\n<x name="$${k}"/>\n')
    tree.write("f.xml", '<x name="included"/>\n')
    assert names(tree) == ["included", "v"]


def test_missing_includes_and_unrun_commands_are_recorded(tree):
    top(tree, '<X-PRE-PROCESS cmd="include" data="nothing/*.xml"/>\n<X-PRE-PROCESS cmd="exec-set" data="a=hostname"/>\n')
    doc = fsxml.preprocess(str(tree.root))
    assert [d.data for d in doc.missing] == ["nothing/*.xml"]
    assert [(d.command, d.origin.line) for d in doc.skipped] == [("exec-set", 3)]


def test_an_include_loop_stops(tree):
    top(tree, '<X-PRE-PROCESS cmd="include" data="loop.xml"/>\n')
    tree.write("loop.xml", '<x name="again"/>\n<X-PRE-PROCESS cmd="include" data="loop.xml"/>\n')
    doc = fsxml.preprocess(str(tree.root))
    assert doc.missing and doc.text.count("again") == fsxml.MAX_DEPTH


def test_every_element_knows_the_file_and_line_of_its_tags(tree):
    top(tree, '<X-PRE-PROCESS cmd="include" data="f.xml"/>\n')
    tree.write("f.xml", '<include>\n  <x name="a">\n    <y/>\n  </x>\n</include>\n')
    root = fsxml.parse(fsxml.preprocess(str(tree.root)))
    x = root.find("x")
    f = str(tree.path("f.xml"))
    assert (x.start, x.end) == (fsxml.Origin(f, 2), fsxml.Origin(f, 4))
    assert x.find("y").self_closing and not x.self_closing


def test_a_document_that_is_not_well_formed_is_reported_at_its_source_line(tree):
    top(tree, '<X-PRE-PROCESS cmd="include" data="f.xml"/>\n')
    tree.write("f.xml", "<include>\n<x>\n<y>\n</x>\n</include>\n")
    with pytest.raises(fsxml.XmlError) as caught:
        fsxml.parse(fsxml.preprocess(str(tree.root)))
    assert caught.value.origin == fsxml.Origin(str(tree.path("f.xml")), 4)


def test_what_freeswitchs_lenient_parser_accepts_is_read_too(tree):
    top(tree, '<x name="a & b"/>\n<x name="^<sip:(.*)>$" data="&amp;&#38;"/>\n')
    root = fsxml.parse(fsxml.preprocess(str(tree.root)))
    assert [(e.get("name"), e.get("data")) for e in root.findall("x")] == [("a & b", ""), ("^<sip:(.*)>$", "&&")]
