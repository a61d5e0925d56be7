import pytest

from booklore_sync.koreader import annotations as ann
from booklore_sync.koreader.books import (
    book_meta,
    book_type_for,
    display_stem,
    extract_isbns,
    isbn10_to_13,
    isbn13_to_10,
)
from booklore_sync.koreader.epub import EpubPackage
from booklore_sync.koreader.luatable import parse_file

from .conftest import BOOKS, KOBO


@pytest.mark.parametrize("name,kind", [
    ("a.epub", "EPUB"), ("A.KEPUB.EPUB", "EPUB"), ("a.pdf", "PDF"), ("a.PDF", "PDF"),
    ("a.cbz", "CBX"), ("a.cbr", "CBX"), ("a.cb7", "CBX"), ("a.cbt", "CBX"), ("a.fb2", "FB2"),
    ("a.fb2.zip", "FB2"), ("a.mobi", "MOBI"), ("a.prc", "MOBI"), ("a.azw3", "AZW3"),
    ("a.azw", "AZW3"), ("a.djvu", "EPUB"), ("a.txt", "EPUB"), ("a.docx", "EPUB"), ("noext", "EPUB"),
])
def test_book_type(name, kind):
    assert book_type_for(name) == kind


def test_isbn():
    assert extract_isbns(["urn:uuid:1", "ISBN:978-0-306-40615-7"]) == ("0306406152", "9780306406157")
    assert extract_isbns(["urn:isbn:0-8044-2957-x"]) == ("080442957X", "9780804429573")
    assert extract_isbns(["isbn:9780306406158"]) == (None, None)   # bad check digit
    assert extract_isbns(["9791234567896"]) == (None, "9791234567896")  # no ISBN-10 form
    assert extract_isbns(["calibre:9780306406157"]) == (None, None)  # other scheme
    assert extract_isbns(["0306406152"]) == ("0306406152", "9780306406157")
    assert isbn13_to_10("9780306406157") == "0306406152"
    assert isbn10_to_13("0306406152") == "9780306406157"


def test_book_meta_sources():
    side = {"doc_props": {"title": "Orig", "authors": "A\nB", "identifiers": "ISBN:9780306406157"}}
    m = book_meta(side, {"custom_props": {"title": "Mine"}}, "x.epub")
    assert (m.title, m.author, m.isbn13) == ("Mine", "A, B", "9780306406157")
    assert book_meta({}, None, "Some Book.pdf").title == "Some Book"
    pkg = EpubPackage.open(BOOKS / "leaves.epub")
    m = book_meta({}, None, "leaves.epub", pkg)
    assert (m.title, m.authors) == ("Leaves of Grass", ["Walt Whitman"])
    assert pkg.identifier_strings() == [
        "URI:http://www.gutenberg.org/ebooks/1322", "uuid:46ee6894-3936-41ca-8e83-ee6d135aa436",
        "calibre:46ee6894-3936-41ca-8e83-ee6d135aa436"]
    assert len(pkg.spine) == 383 and pkg.spine_step == 6
    pkg.close()
    assert display_stem("/mnt/onboard/a.b.epub") == "a.b"


def test_colour_and_style_maps():
    for name, hexcode in [("yellow", "#FFC107"), ("Green", "#4ADE80"), ("cyan", "#38BDF8"),
                          ("blue", "#38BDF8"), ("pink", "#F472B6"), ("purple", "#F472B6"),
                          ("orange", "#FB923C"), ("RED", "#FB923C"), ("gray", "#FFC107"),
                          ("white", "#FFC107"), ("olive", "#FFC107"), (None, "#FFC107")]:
        assert ann.color_hex(name) == hexcode
    assert ann.color_hex("olive", {"olive": {"name": "Moss", "code": "#a1b2c3"}}) == "#A1B2C3"
    for drawer, style in [("lighten", "highlight"), ("underscore", "underline"),
                          ("strikeout", "strikethrough"), ("invert", "highlight"),
                          ("other", "highlight"), (None, "highlight")]:
        assert ann.style_for(drawer) == style


def test_kinds_current_format():
    items, problems = ann.extract_items(parse_file(KOBO / "Books/leaves.sdr/metadata.epub.lua"))
    assert problems == []
    assert [i.kind for i in items] == ["highlight", "highlight", "bookmark", "highlight",
                                       "bookmark", "note"]
    # a bookmark with a note stays a bookmark (no drawer)
    items, _ = ann.extract_items({"annotations": [
        {"datetime": "2024-01-01 00:00:00", "page": "/body/x", "note": "n"},
        {"datetime": "2024-01-01 00:00:01", "drawer": "lighten", "note": "", "pos0": "a",
         "pos1": "b"},
        "junk", {"page": 3}]})
    assert [i.kind for i in items] == ["bookmark", "highlight"]
    assert len(_) == 2


def test_legacy_format():
    items, problems = ann.extract_items(parse_file(KOBO / "Books/2col.sdr/metadata.pdf.lua"))
    assert problems == []
    got = [(i.kind, i.datetime, i.text, i.note, i.drawer, i.paged, i.page_number) for i in items]
    assert got == [
        ("bookmark", "2023-11-02 20:17:30", None, None, None, True, 2),
        ("note", "2023-11-02 20:15:58", "cd", "right column = letters,\nleft column = digits",
         "underscore", True, 1),
        ("highlight", "2023-11-02 20:13:07", "34", None, "lighten", True, 1),
    ]
    assert ann.position_key(items[2]) == "1@98.84064991022,311.05733942334"
    assert ann.bookmark_title(items[0]) == "p. 2"


def test_bookmark_titles_and_notes():
    it = ann.Item(kind="bookmark", datetime="d", page=12, paged=True, chapter="Ch " * 200)
    assert ann.bookmark_title(it).startswith("p. 12 — Ch") and len(ann.bookmark_title(it)) == 255
    it = ann.Item(kind="bookmark", datetime="d", page="/body/x", text="in Ch")
    assert ann.bookmark_title(it) == "in Ch"
    assert ann.plain_note("<p>a<b>b</b></p><p>c&amp;d</p>", "html") == "ab\nc&d"
    assert ann.plain_note("*md*", "md") == "*md*"
