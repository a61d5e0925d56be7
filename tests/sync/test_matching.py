"""Match Unmatched Books, link and Re-match All over real HTTP (spec §4.3, §4.5)."""

from __future__ import annotations

import pytest

from booklore_sync.actions.match import LinkError, run_link, run_match, run_rematch
from booklore_sync.actions.sync import make_client
from booklore_sync.sync.manual import ENTER_ID, SEARCH_AGAIN, SKIP, STOP, manual_match
from booklore_sync.sync.matcher import Candidate, Matcher
from tests.sync.conftest import make_config, open_store, scan_into

FP_A = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
FP_B = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"


class Script:
    """A scripted Prompter: answers come from a list; every question is recorded."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.seen: list[tuple[str, object]] = []

    def _next(self):
        assert self.answers, f"unexpected question; seen so far: {self.seen}"
        return self.answers.pop(0)

    def confirm(self, message):
        self.seen.append(("confirm", message))
        return self._next()

    def choose(self, book, term, candidates):
        self.seen.append(("choose", (term, [c.label() for c in candidates])))
        answer = self._next()
        if isinstance(answer, int):
            return candidates[answer]
        if callable(answer):
            return answer(candidates)
        return answer

    def text(self, message, default=""):
        self.seen.append(("text", (message, default)))
        return self._next()

    def say(self, message):
        self.seen.append(("say", message))


def _seed_unknown_books(cfg):
    """Two cached books the server cannot find by fingerprint, each with a session."""
    with open_store(cfg) as store:
        store.upsert_book(FP_A, file_path="/dev/Books/leaves-copy.epub", title="Leaves of Grass",
                          author="Walt Whitman")
        store.upsert_book(FP_B, file_path="/dev/Books/unknown-book.epub")
        for fp in (FP_A, FP_B):
            store.enqueue_session(fp, 1_700_000_000, {
                "bookType": "EPUB", "startTime": "2023-11-14T22:13:20Z",
                "endTime": "2023-11-14T22:43:20Z", "durationSeconds": 1800,
                "durationFormatted": "30m 0s", "startProgress": 1.0, "endProgress": 5.0,
                "progressDelta": 4.0, "startLocation": "1", "endLocation": "9"})


@pytest.mark.parametrize("mode", ["fork", "upstream"])
def test_auto_by_isbn_then_uploads(home, emulator_factory, mode):
    emu = emulator_factory(mode)
    book = emu.state.add_book(title="Isbn Book", authors=["A. Author"], isbn13="9780306406157")
    cfg = make_config(home, emu.base_url)
    with open_store(cfg) as store:
        store.upsert_book(FP_A, title="Something else", isbn13="978-0-306-40615-7")
        store.enqueue_rating(FP_A, 8)
    outcome = run_match(cfg, interactive=False)
    assert outcome.exit_code == 0, outcome.messages
    assert outcome.to_json() == {"matched": 1, "still_unmatched": 0}
    with open_store(cfg) as store:
        cached = store.get_book_by_hash(FP_A)
        assert cached.book_id == book["id"] and cached.match_method == "isbn"
        assert store.match_history(cached.id)[-1]["method"] == "isbn"
        assert store.counts()["ratings"] == 0  # uploaded before match returned
    assert {r["bookId"]: r["personalRating"] for r in emu.state.ratings()} == {book["id"]: 8}


def test_auto_by_hash(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    outcome = run_match(cfg, interactive=False)
    assert outcome.exit_code == 0
    assert outcome.matched >= 3
    with open_store(cfg) as store:
        assert all(b.match_method == "hash" for b in store.books() if b.book_id)
        assert sum(store.counts().values()) == 0 or outcome.uploads.failed == 0


def test_isbn_ambiguous_is_not_automatic(home, emu):
    emu.state.add_book(title="One", isbn13="9780306406157")
    emu.state.add_book(title="Two", isbn13="9780306406157")
    cfg = make_config(home, emu.base_url)
    with open_store(cfg) as store:
        store.upsert_book(FP_A, isbn13="9780306406157")
    outcome = run_match(cfg, interactive=False)
    assert outcome.to_json() == {"matched": 0, "still_unmatched": 1}


def test_match_offline_changes_nothing(home, emu):
    cfg = make_config(home, emu.base_url)
    with open_store(cfg) as store:
        store.upsert_book(FP_A, isbn13="9780306406157")
    emu.stop()
    outcome = run_match(cfg, interactive=False)
    assert outcome.exit_code == 1 and outcome.matched == 0
    assert outcome.to_json() == {"matched": 0, "still_unmatched": 1}


@pytest.mark.parametrize("mode", ["fork", "upstream"])
def test_manual_pick_uploads_at_once(home, emulator_factory, mode):
    emu = emulator_factory(mode)
    cfg = make_config(home, emu.base_url)
    _seed_unknown_books(cfg)
    leaves = next(b for b in emu.state.books() if b["metadata"].get("title") == "Leaves of Grass")
    script = Script([
        True,  # "No new matches found (2 still unmatched). Match them manually?"
        lambda cands: next(c for c in cands if c.book_id == leaves["id"]),
        STOP,
    ])
    outcome = run_match(cfg, interactive=True, prompter=script)
    assert script.seen[0] == ("confirm",
                              "No new matches found (2 still unmatched). Match them manually?")
    kind, (term, labels) = script.seen[2]
    assert kind == "choose" and term == "Leaves of Grass"
    assert 1 <= len(labels) <= 5
    assert any(label.startswith("Leaves of Grass — Walt Whitman (100%)") for label in labels)
    assert outcome.to_json() == {"matched": 1, "still_unmatched": 1}
    assert [s["bookId"] for s in emu.state.sessions()] == [leaves["id"]]
    with open_store(cfg) as store:
        assert store.get_book_by_hash(FP_A).match_method == "manual"
        assert store.counts()["sessions"] == 1  # the other book's session waits


def test_manual_skip_search_again_enter_id(home, emu):
    cfg = make_config(home, emu.base_url)
    _seed_unknown_books(cfg)
    juliet = next(b for b in emu.state.books() if "Juliet" in (b["metadata"].get("title") or ""))
    script = Script([
        True,
        SKIP,                      # Leaves of Grass: skip this book
        SEARCH_AGAIN, "juliet",    # unknown-book: search again with another term
        ENTER_ID, "abc",           # not a number
        ENTER_ID, "99999",         # no such book
        ENTER_ID, str(juliet["id"]),
    ])
    outcome = run_match(cfg, interactive=True, prompter=script)
    terms = [payload[0] for kind, payload in script.seen if kind == "choose"]
    assert terms[:3] == ["Leaves of Grass", "unknown-book", "juliet"]
    said = [payload for kind, payload in script.seen if kind == "say"]
    assert any("not a book ID" in s for s in said)
    assert any("no book with ID 99999" in s for s in said)
    assert outcome.to_json() == {"matched": 1, "still_unmatched": 1}
    assert [s["bookId"] for s in emu.state.sessions()] == [juliet["id"]]


def test_manual_not_offered_when_auto_found_something(home, emu):
    cfg = make_config(home, emu.base_url)
    emu.state.add_book(title="Isbn Book", isbn13="9780306406157")
    with open_store(cfg) as store:
        store.upsert_book(FP_A, isbn13="9780306406157")
        store.upsert_book(FP_B, title="Nothing like it")
    script = Script([])
    outcome = run_match(cfg, interactive=True, prompter=script)
    assert script.seen == [] and outcome.matched == 1


def test_candidates_use_server_score(home, emu):
    cfg = make_config(home, emu.base_url)
    with open_store(cfg) as store, make_client(cfg, store) as client:
        matcher = Matcher(store, client)
        matcher.connect()
        cands = matcher.search("Leaves")
    assert cands and isinstance(cands[0], Candidate)
    top = cands[0]
    assert top.title == "Leaves of Grass" and top.percent == 37  # 0.372… in the spec


def test_upstream_local_ranking_same_algorithm(home, emulator_factory):
    emu = emulator_factory("upstream")
    cfg = make_config(home, emu.base_url)
    with open_store(cfg) as store, make_client(cfg, store) as client:
        matcher = Matcher(store, client)
        matcher.connect()
        cands = matcher.search("Leaves")
    assert cands[0].title == "Leaves of Grass" and cands[0].percent == 37


def test_link(home, emu, kobo):
    cfg = make_config(home, emu.base_url)
    with open_store(cfg) as store:
        store.upsert_book(FP_A, file_path="/dev/x.epub")
    with pytest.raises(LinkError) as info:
        run_link(cfg, "/nowhere.epub", 1)
    assert info.value.code == 2
    with pytest.raises(LinkError) as info:
        run_link(cfg, FP_A, 424242)
    assert info.value.code == 2
    message = run_link(cfg, FP_A, 1)
    assert "next sync" in message
    with open_store(cfg) as store:
        assert store.get_book_by_hash(FP_A).book_id == 1
        assert store.get_book_by_hash(FP_A).match_method == "manual"
    assert emu.state.sessions() == []  # link uploads nothing itself
    emu.stop()
    with pytest.raises(LinkError) as info:
        run_link(cfg, "/dev/x.epub", 2)
    assert info.value.code == 1


def test_rematch_after_renumber(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    run_match(cfg, interactive=False)
    with open_store(cfg) as store:
        before = {b.file_hash: b.book_id for b in store.books() if b.book_id}
        store.upsert_book(FP_A, title="Manual one")
        store.set_book_id(store.get_book_by_hash(FP_A).id, 1, "manual")
        store.enqueue_rating(FP_A, 4)
    emu.state.renumber(100)
    code, result, _ = run_rematch(cfg)
    assert code == 0
    assert result.changed == len(before)
    assert result.now_unmatched == 1  # the manual link is forgotten too
    with open_store(cfg) as store:
        after = {b.file_hash: b.book_id for b in store.books() if b.book_id}
        assert after == {fp: bid + 100 for fp, bid in before.items()}
        assert store.get_book_by_hash(FP_A).book_id is None


def test_rematch_aborts_when_server_away(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    run_match(cfg, interactive=False)
    with open_store(cfg) as store:
        before = {b.file_hash: b.book_id for b in store.books()}
    # the server stops answering by-hash lookups part-way: all or nothing
    emu.state.inject_fault("/api/koreader/books/by-hash/", action="drop", match="prefix",
                           skip=1, times=None)
    code, result, messages = run_rematch(cfg)
    assert code == 1 and result is None
    assert any("no stored ID was changed" in m for m in messages)
    with open_store(cfg) as store:
        assert {b.file_hash: b.book_id for b in store.books()} == before


def test_manual_match_stop(home, emu):
    cfg = make_config(home, emu.base_url)
    _seed_unknown_books(cfg)
    with open_store(cfg) as store, make_client(cfg, store) as client:
        matcher = Matcher(store, client)
        matcher.connect()
        result = manual_match(matcher, Script([STOP]))
    assert result.stopped and result.matched == []
