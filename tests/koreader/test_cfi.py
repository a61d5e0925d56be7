import pytest

from booklore_sync.koreader.cfi import CfiConverter, normalise_text
from booklore_sync.koreader.epub import EpubPackage, parse_xhtml

from .conftest import BOOKS
from .epubmaker import make_epub


@pytest.fixture(scope="module")
def leaves():
    c = CfiConverter.open(BOOKS / "leaves.epub", 20240114)
    yield c
    c.close()


# koreader-data §7.7 worked examples
@pytest.mark.parametrize("book,xp,cfi", [
    ("leaves.epub", "/body/DocFragment[3]/body/blockquote/div/p[4]/a/text().5",
     "epubcfi(/6/6[item41]!/4/14/2/8/2/1:5)"),
    ("edge/13_6_1-BF-02.epub", "/body/DocFragment[4]/body/p/text().8",
     "epubcfi(/6/8[ID26626]!/4/2/1:8)"),
    ("edge/12_1_1-BF-03.epub", "/body/DocFragment[2]/body/p/text().0",
     "epubcfi(/6/4[ID26617]!/4/10/1:0)"),
])
@pytest.mark.parametrize("dom", [None, 20240114, 20260812])
def test_worked_examples(book, xp, cfi, dom):
    c = CfiConverter.open(BOOKS / book, dom)
    try:
        assert c.point(xp).cfi == cfi
        # the always-indexed form of DOM 20260812 gives the same CFI
        indexed = xp.replace("/body/", "/body[1]/").replace("/p/", "/p[1]/").replace(
            "text().", "text()[1].")
        assert c.point(indexed).cfi == cfi
    finally:
        c.close()


def test_leaves_items(leaves):
    # the sample device's highlights (README "Annotations"): direct conversions
    cases = [
        ("/body/DocFragment[6]/body/div[1]/text()[3].2", "/body/DocFragment[6]/body/div[1]/text()[3].51",
         "A Phantom arose before me with distrustful aspect",
         "epubcfi(/6/12[item524]!/4/4,/5:2,/5:51)"),
        # spans a <br/>: text()[19] = run 21 → /41, text()[20] → /43
        ("/body/DocFragment[7]/body/div[1]/text()[19].2", "/body/DocFragment[7]/body/div[1]/text()[20].43",
         "Then falter not O book, fulfil your destiny,\n\u00a0 You not a reminiscence of the land alone,",
         "epubcfi(/6/14[item523]!/4/4,/41:2,/43:43)"),
        ("/body/DocFragment[94]/body/div[1]/text()[20].2", "/body/DocFragment[94]/body/div[1]/text()[20].69",
         'Placard "Removed" and "To Let" on the rocks of your snowy Parnassus',
         "epubcfi(/6/188[item112]!/4/6,/45:2,/45:69)"),
        ("/body/DocFragment[328]/body/div[1]/text()[7].2", "/body/DocFragment[328]/body/div[1]/text()[8].48",
         '"Is, that we all are onward, onward, speeding slowly, surely bettering,\n'
         '\u00a0 "Life, life an endless march, an endless army,',
         "epubcfi(/6/656[item2347]!/4/4,/13:2,/15:48)"),
    ]
    for pos0, pos1, text, cfi in cases:
        res = leaves.range(pos0, pos1, text)
        assert (res.cfi, res.method) == (cfi, "direct"), res


def test_leaves_bookmarks_and_progress(leaves):
    assert leaves.point("/body/DocFragment[94]/body/div[1]/text()[17].0").cfi == \
        "epubcfi(/6/188[item112]!/4/6/39:0)"
    assert leaves.point("/body/DocFragment[328]/body/div[1]/text()[2].34").cfi == \
        "epubcfi(/6/656[item2347]!/4/4/3:34)"
    assert leaves.point("/body/DocFragment[335]/body/div[1]/text()[1].0").cfi == \
        "epubcfi(/6/670[item2340]!/4/4/1:0)"


def test_juliet_highlight():
    c = CfiConverter.open(BOOKS / "juliet.epub", 20240114)
    res = c.range("/body/DocFragment[5]/body/div/div/div/blockquote[2]/p/text().21",
                  "/body/DocFragment[5]/body/div/div/div/blockquote[2]/p/text().42",
                  "we'll not carry coals")
    assert res.cfi == "epubcfi(/6/10[main1]!/4/2/2[section_77306]/4/6/2,/1:21,/1:42)"
    c.close()


def test_wrong_text_is_searched_or_rejected(leaves):
    # positions off by a few characters: the unique text is found by search
    res = leaves.range("/body/DocFragment[6]/body/div[1]/text()[3].0",
                       "/body/DocFragment[6]/body/div[1]/text()[3].40",
                       "A Phantom arose before me with distrustful aspect")
    assert res.cfi == "epubcfi(/6/12[item524]!/4/4,/5:2,/5:51)" and res.method == "search"
    res = leaves.range("/body/DocFragment[6]/body/div[1]/text()[3].2",
                       "/body/DocFragment[6]/body/div[1]/text()[3].51", "words that are not there")
    assert res.cfi is None and "not found" in res.reason


def test_unconvertible(leaves):
    assert leaves.range("/body/DocFragment[6]/body/div[1]/text()[3].2",
                        "/body/DocFragment[7]/body/div[1]/text()[1].5").reason == \
        "the highlight crosses a spine item (chapter) boundary"
    assert leaves.point("/FictionBook/body/section[2]/p[5]/text().3").cfi is None
    assert "not in the spine" in leaves.point("/body/DocFragment[999]/body/p/text().0").reason
    assert "does not exist" in leaves.point("/body/DocFragment[6]/body/div[1]/text()[99].0").reason
    assert "no element" in leaves.point("/body/DocFragment[6]/body/table/text().0").reason
    assert leaves.point("/body/DocFragment[6]/body/div[1]/text()[3].500").cfi is None


def test_entities_book():
    # HTML named entities in XHTML with only a DOCTYPE: substituted before parsing
    c = CfiConverter.open(BOOKS / "edge/5_3_1-BF-01.epub", None)
    res = c.point("/body/DocFragment/body/div/p/text().3")
    assert res.cfi is not None and res.cfi.startswith("epubcfi(/6/2[ID26603]!/4/2/")
    c.close()
    pkg = EpubPackage.open(BOOKS / "edge/5_3_1-BF-01.epub")
    root = pkg.document(pkg.spine[0].item)
    text = "".join(root.itertext())
    assert "\u00a9" in text and "\u20ac" in text and "\u00a0" in text
    pkg.close()


def test_parse_xhtml_entities():
    root = parse_xhtml(b'<!DOCTYPE html><html><body><p>a&nbsp;b&amp;&lt;&copy;&quot;</p></body></html>')
    assert root[0][0].text == 'a\u00a0b&<\u00a9"'


def _conv(tmp_path, body, dom=20240114, **kw):
    path = make_epub(tmp_path / "t.epub", [("c1", "c1.xhtml", body)], **kw)
    return CfiConverter.open(path, dom)


def test_plugin_range_forms(tmp_path):
    body = ("<h2>Title</h2><p>Lorem ipsum dolor sit amet, consectetur.</p>"
            "<p>Second paragraph with some more text in it.</p>")
    c = _conv(tmp_path, body)
    assert c.range("/body/DocFragment[1]/body/p[1]/text().0",
                   "/body/DocFragment[1]/body/p[1]/text().29").cfi == \
        "epubcfi(/6/2[c1]!/4/4,/1:0,/1:29)"
    assert c.range("/body/DocFragment[1]/body/p[1]/text().0",
                   "/body/DocFragment[1]/body/p[2]/text().29").cfi == \
        "epubcfi(/6/2[c1]!/4,/4/1:0,/6/1:29)"


def test_whitespace_rules(tmp_path):
    # whitespace-only nodes at block start / between blocks vanish; runs collapse;
    # NBSP is an ordinary character; offsets map back to the raw text
    body = ("\n  <div>\n   <p>x</p>\n  <p>a   b\n\n c\u00a0 d <b>bold</b>   tail</p>\n</div>")
    c = _conv(tmp_path, body)
    # crengine: "a b c\u00a0 d " → offset 4 is "c" (raw index 8)
    assert c.point("/body/DocFragment[1]/body/div/p[2]/text()[1].4").cfi == \
        "epubcfi(/6/2[c1]!/4/2/4/1:8)"
    assert c.point("/body/DocFragment[1]/body/div/p[2]/text()[2].1").cfi == \
        "epubcfi(/6/2[c1]!/4/2/4/3:3)"
    res = c.range("/body/DocFragment[1]/body/div/p[2]/text()[1].0",
                  "/body/DocFragment[1]/body/div/p[2]/text()[2].5", "a b c\u00a0 d bold tail")
    assert res.cfi == "epubcfi(/6/2[c1]!/4/2/4,/1:0,/3:7)" and res.method == "direct"


def test_pre_keeps_whitespace(tmp_path):
    c = _conv(tmp_path, "<pre>a   b\n  c</pre>")
    assert c.point("/body/DocFragment[1]/body/pre/text().5").cfi == "epubcfi(/6/2[c1]!/4/2/1:5)"


def test_utf16_offsets_and_soft_hyphen(tmp_path):
    c = _conv(tmp_path, "<p>😀😀 smile in\u00adcredible</p>")
    # code point offset 3 (after two emoji + space) → 5 UTF-16 units
    assert c.point("/body/DocFragment[1]/body/p/text().3").cfi == "epubcfi(/6/2[c1]!/4/2/1:5)"
    res = c.range("/body/DocFragment[1]/body/p/text().3", "/body/DocFragment[1]/body/p/text().20",
                  "smile incredible")
    assert res.cfi == "epubcfi(/6/2[c1]!/4/2,/1:5,/1:22)" and res.method == "direct"


def test_comment_joins_runs_and_element_points(tmp_path):
    c = _conv(tmp_path, '<p id="x">ab<!-- c -->cd<img src="i.png"/>ef</p><p></p>')
    assert c.point("/body/DocFragment[1]/body/p[1]/text()[1].3").cfi == \
        "epubcfi(/6/2[c1]!/4/2[x]/1:3)"
    assert c.point("/body/DocFragment[1]/body/p[1]/img.0").cfi == "epubcfi(/6/2[c1]!/4/2[x]/2)"
    assert c.point("/body/DocFragment[1]/body/p[1].0").cfi == "epubcfi(/6/2[c1]!/4/2[x]/1:0)"
    assert c.point("/body/DocFragment[1]/body/p[1].1").cfi == "epubcfi(/6/2[c1]!/4/2[x]/2)"
    assert c.point("/body/DocFragment[1]/body/p[2].0").cfi == "epubcfi(/6/2[c1]!/4/4)"


def test_fragment_list_rules(tmp_path):
    docs = [("a", "a.xhtml", "<p>A</p>"), ("img", "i.svg", "<svg/>", "image/svg+xml"),
            ("b", "b.xhtml", "<p>B text</p>")]
    path = make_epub(tmp_path / "f.epub", docs, spine_attrs={"b": 'linear="no"'},
                     spine_extra='<itemref idref="missing"/>')
    old = CfiConverter.open(path, 20200223)       # non-XHTML items are skipped
    new = CfiConverter.open(path, 20240114)       # placeholders from 20240114 on
    # itemrefs: missing(1), a(2), img(3), b(4)
    assert old.point("/body/DocFragment[2]/body/p/text().2").cfi == "epubcfi(/6/8[b]!/4/2/1:2)"
    assert new.point("/body/DocFragment[3]/body/p/text().2").cfi == "epubcfi(/6/8[b]!/4/2/1:2)"
    assert new.point("/body/DocFragment[1]/body/p/text().0").cfi == "epubcfi(/6/4[a]!/4/2/1:0)"


def test_wrappers_skipped_for_old_dom(tmp_path):
    c = _conv(tmp_path, "<div><p>x</p>text</div>", dom=20180101)
    assert c.point("/body/DocFragment[1]/body/div/autoBoxing/text().1").cfi == \
        "epubcfi(/6/2[c1]!/4/2/3:1)"


def test_normalise_text():
    assert normalise_text("  a\u00ad b\n\t c\u00a0 ") == "a b c\u00a0"
