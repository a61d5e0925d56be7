import os
from pathlib import Path

import pytest

from booklore_sync.koreader.discovery import (
    Candidate,
    PathMapper,
    SidecarGroup,
    SourceError,
    choose_sidecar,
    collect_groups,
    find_layout,
    order_candidates,
)

from .conftest import KOBO


def test_find_layout_kobo_and_data_dir():
    lay = find_layout(KOBO)
    assert lay.data_dir == KOBO.resolve() / ".adds/koreader" and lay.device_root == KOBO.resolve()
    lay = find_layout(KOBO / ".adds/koreader")
    assert lay.data_dir == lay.source and lay.device_root == KOBO.resolve()


@pytest.mark.parametrize("place", ["koreader", "applications/koreader"])
def test_find_layout_other_platforms(tmp_path, place):
    (tmp_path / place).mkdir(parents=True)
    (tmp_path / place / "settings.reader.lua").write_text("return {}")
    assert find_layout(tmp_path).data_dir == (tmp_path / place).resolve()
    assert find_layout(tmp_path / place).device_root == tmp_path.resolve()


def test_find_layout_errors(tmp_path):
    with pytest.raises(SourceError):
        find_layout(tmp_path / "nope")
    with pytest.raises(SourceError):
        find_layout(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(SourceError):
        find_layout(tmp_path / "f")


def test_path_mapper():
    m = PathMapper(Path("/mnt/dev"), {"/mnt/sd/": "/media/card", "/mnt/onboard/Special": "/x"})
    assert m.to_local("/mnt/onboard/Books/a.epub") == Path("/mnt/dev/Books/a.epub")
    assert m.to_local("/mnt/us/documents/a.pdf") == Path("/mnt/dev/documents/a.pdf")
    assert m.to_local("/mnt/ext1/a.pdf") == Path("/mnt/dev/a.pdf")
    assert m.to_local("/mnt/sd/b.epub") == Path("/media/card/b.epub")
    assert m.to_local("/mnt/onboard/Special/c.epub") == Path("/x/c.epub")  # user map first
    assert m.to_local("relative") is None and m.to_local(None) is None


def test_collect_groups_fixture():
    lay = find_layout(KOBO)
    groups, files = collect_groups(lay, PathMapper(lay.device_root))
    kinds = sorted((g.candidates[0].kind, (g.book_path.name if g.book_path else g.hash))
                   for g in groups)
    assert kinds == [("doc", "2col.pdf"), ("doc", "leaves.epub"), ("doc", "tall.pdf"),
                     ("hash", "cf7ce9b8d4e135c8ac340f18d1e58c85")]
    assert sorted(os.path.basename(f) for f in files) == ["2col.pdf", "juliet.epub", "leaves.epub",
                                             "sample.txt", "tall.pdf"]


def test_sidecar_names_and_locations(tmp_path):
    dd = tmp_path / ".adds/koreader"
    dd.mkdir(parents=True)
    (dd / "settings.reader.lua").write_text("return {}")
    b = tmp_path / "Books"
    (b / "Foo.kepub.sdr").mkdir(parents=True)
    (b / "Foo.kepub.sdr/metadata.epub.lua").write_text("return {a=1}")
    (b / "Bar.fb2.sdr").mkdir()
    (b / "Bar.fb2.sdr/metadata.zip.lua").write_text("return {a=1}")
    (b / "NoExt.sdr").mkdir()
    (b / "NoExt.sdr/metadata._.lua").write_text("return {a=1}")
    (b / "Old.sdr").mkdir()
    (b / "Old.sdr/Old.epub.lua").write_text("return {a=1}")
    (b / "K.pdf.kpdfview.lua").write_text("return {a=1}")
    (dd / "history").mkdir()
    (dd / "history/[#mnt#onboard#Books] Hist.epub.lua").write_text("return {a=1}")
    lay = find_layout(tmp_path)
    groups, _ = collect_groups(lay, PathMapper(lay.device_root))
    got = sorted((g.book_path.name, [c.kind for c in g.candidates]) for g in groups)
    assert got == [("Bar.fb2.zip", ["doc"]), ("Foo.kepub.epub", ["doc"]), ("Hist.epub", ["history"]),
                   ("K.pdf", ["kpdfview"]), ("NoExt", ["doc"]), ("Old.epub", ["legacy"])]


def test_newest_valid_rule(tmp_path):
    def cand(kind, name, mtime, content, primary=None):
        p = tmp_path / name
        p.write_text(content)
        os.utime(p, (mtime, mtime))
        return Candidate(kind, p, mtime, primary)

    doc = cand("doc", "doc.lua", 100, "return {v='doc'}")
    old = cand("doc.old", "doc.lua.old", 300, "return {v='old'}", primary=doc.path)
    hsh = cand("hash", "hash.lua", 200, "return {v='hash'}")
    # .old never wins over its primary; otherwise newest first
    assert [c.kind for c in order_candidates([doc, old, hsh], True)] == ["hash", "doc", "doc.old"]
    assert [c.kind for c in order_candidates([hsh, old, doc], False)] == ["doc", "doc.old", "hash"]
    g = SidecarGroup("k", candidates=[doc, old])
    assert choose_sidecar(g, True).data == {"v": "doc"}
    doc.path.write_text("return {broken")
    chosen = choose_sidecar(g, True)
    assert chosen.data == {"v": "old"} and len(chosen.errors) == 1
    assert "used the backup doc.lua.old" in chosen.errors[0][1]
    doc.path.write_text("return {}")        # empty table: skipped silently
    assert choose_sidecar(g, True).data == {"v": "old"} and choose_sidecar(g, True).errors == []
    old.path.write_text("")
    assert choose_sidecar(g, True) is None
