"""A hypothesis state machine over the sync engine (issue 5): queue operations, a flaky
server (the emulator's fault hooks, real HTTP) and crashes.

Two more writers than this store's runs: a *fresh store* (the local store lost and
rebuilt from the same KOReader data) and a *second uploader* (another program posting
some of the same sessions, v1 notes and PDF bookmarks straight to the server, before
this store made first contact with that book) — first-contact reconciliation (§4.1)
must keep both from doubling anything.

Invariant after every step, for every item ever enqueued:
- it is never on the server more than once, and the server holds nothing else;
- an item no longer queued is on the server exactly once;
- a queued item in state 'pending' of a kind the server does not deduplicate (sessions,
  v1 book notes, bookmarks without a CFI), of a book this store has reconciled for that
  kind, is not on the server (otherwise a later run would send it a second time).
At the end of every example one clean sync leaves every item on the server exactly once
and every queue empty.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from booklore_sync.booklore import BookLoreClient
from booklore_sync.booklore.session_models import SessionIn
from booklore_sync.common.vocab import ReconcileKind
from booklore_sync.emulator import start_emulator
from booklore_sync.settings_defaults import DEFAULTS
from booklore_sync.store import ALREADY_QUEUED, ALREADY_SYNCED, QUEUED, Store
from booklore_sync.sync import engine as engine_module
from booklore_sync.sync.engine import SyncEngine
from tests.conftest import new_store

BATCH = "/api/v1/reading-sessions/batch"
SESSIONS = "/api/v1/reading-sessions"
ANNOTATIONS = "/api/v1/annotations"
NOTES_V2 = "/api/v2/book-notes"
NOTES_V1 = "/api/v1/book-notes"
BOOKMARKS = "/api/v1/bookmarks"

# where the faults aim: the writes the server does not deduplicate, the other writes,
# and what the runs read (the checks' list reads, the fingerprint lookups, everything
# under /api/v1 — health probe and token requests included)
UNDEDUPLICATED = [(BATCH, "exact", "POST"), (SESSIONS, "exact", "POST"),
                  (NOTES_V1, "exact", "POST"), (BOOKMARKS, "exact", "POST")]
DEDUPLICATED = [(ANNOTATIONS, "exact", "POST"), (NOTES_V2, "exact", "POST")]
CHECKS = [
    (SESSIONS + "/book/", "prefix", "GET"),
    (NOTES_V1 + "/book/", "prefix", "GET"),
    (BOOKMARKS + "/book/", "prefix", "GET"),
]
READS = CHECKS + [
    ("/api/koreader/books/by-hash/", "prefix", "GET"),
    ("/api/v1/", "prefix", "*"),
]
# (action, status).  A 500 or 503 is answered without processing the request; a proxy's
# 502 after a commit is an unknown outcome.  (A 500 *after* a commit is not a case the
# spec allows: a batch answered 500 stored nothing, api §6 probe 6.)
AMBIGUOUS = [("commit_then_drop", None), ("commit_then_hang", None),
             ("commit_then_status", 502), ("drop", None), ("hang", None)]
STORED_UNANSWERED = AMBIGUOUS[:3]
REFUSED = [("status", 500), ("status", 503), ("drop", None), ("hang", None)]
WRITES = ["post_sessions_batch", "post_session", "create_book_note_v1", "create_book_note_v2",
          "create_bookmark", "create_annotation"]
READ_TIMEOUT = 0.5
_EXAMPLES = itertools.count(1)  # a fresh store (and fresh books) per example


class Crash(BaseException):
    """The process dies (SIGKILL): nothing after this point runs, no handler sees it."""


class CrashingClient:
    """Delegates to the real client; ``method`` kills the run before its request leaves
    or right after its answer came back (before the store learns of it)."""

    def __init__(self, client: BookLoreClient, method: str, after: bool) -> None:
        self._client, self._method, self._after = client, method, after
        self.crashed = False

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if name != self._method:
            return attr

        def call(*args, **kwargs):
            if self._after:
                attr(*args, **kwargs)
            self.crashed = True
            raise Crash(name)

        return call


@dataclass
class Book:
    fingerprint: str
    book_id: int
    book_type: str


@dataclass(frozen=True)
class Item:
    """One enqueued item and how to find it on the server."""

    queue: str
    key: tuple  # the store's natural key, fingerprint first
    book: int  # BookLore id
    deduplicated: bool  # the server refuses a second copy (409)
    on_server: tuple  # ((table, match), …) — each part it must appear in once
    payload: dict = field(default_factory=dict, compare=False)  # as a scan queues it


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class SyncMachine(RuleBasedStateMachine):
    def __init__(self, emu, flaky: BookLoreClient, steady: BookLoreClient, root: Path,
                 other: BookLoreClient | None = None) -> None:
        super().__init__()
        self.emu = emu
        self.client = flaky  # a short read timeout, for the runs with faults
        self.steady = steady  # a normal one, for the clean runs
        self.other = other or steady  # a second uploader (the plugin, another computer)
        self.root = root
        self.store: Store | None = None
        self.items: dict[tuple, Item] = {}
        self.counter = itertools.count(1)

    # ---------------------------------------------------------------- setup
    @initialize(destination=st.sampled_from(["in_book", "in_booklore", "both"]),
                concurrency=st.sampled_from([1, 4]))
    def setup(self, destination: str, concurrency: int) -> None:
        self.emu.state.reset()  # back to the seed; faults and log cleared
        n = next(_EXAMPLES)
        home = self.root / f"example-{n}"
        home.mkdir(parents=True)
        self.home = home
        self.stores = itertools.count(1)
        self.store = new_store(home / "store.db")
        # concurrency 4: the two books' uploads of a phase go at the same time (§4.1)
        self.settings = dict(DEFAULTS, **{"annotations.notes_destination": destination,
                                          "http.max_concurrency": concurrency,
                                          "sync.settle_seconds": 0})
        self.destination = destination
        self.books: dict[str, Book] = {}
        for kind, book_type in (("epub", "EPUB"), ("pdf", "PDF")):
            fp = hashlib.md5(f"{home}/{kind}".encode()).hexdigest()
            rec = self.emu.state.add_book(title=f"{kind} {n}", file_hash=fp,
                                          book_type=book_type)
            self.store.upsert_book(fp, title=f"{kind} {n}", book_type=book_type)
            self.books[kind] = Book(fp, rec["id"], book_type)
        self.titles = {kind: f"{kind} {n}" for kind in self.books}

    def teardown(self) -> None:
        if self.store is None:
            return
        try:
            if sys.exc_info()[0] is None:  # the example ran to its end: one clean sync
                self.emu.state.clear_faults()
                report = self._run(self.steady)
                assert report.exit_code == 0, (report.messages, report.to_json())
                assert self.store.counts() == {q: 0 for q in self.store.counts()}, \
                    self.store.all_pending()
                self._check(final=True)
        finally:
            self.store.close()

    # ---------------------------------------------------------------- enqueue rules
    def _add(self, item: Item, outcome: str) -> None:
        if item.key in self.items:
            assert outcome in (ALREADY_QUEUED, ALREADY_SYNCED), outcome
        else:
            assert outcome == QUEUED, outcome
            self.items[item.key] = item

    @rule(what=st.sampled_from(["sessions", "pdf_highlight", "epub_highlight", "epub_note",
                                "pdf_bookmark"]),
          kind=st.sampled_from(["epub", "pdf"]), count=st.integers(1, 4),
          duration=st.integers(30, 4000))
    def enqueue(self, what: str, kind: str, count: int, duration: int) -> None:
        """A scan: every earlier item found again, and new ones (sessions of either book,
        or ``count`` items of one annotation or bookmark kind)."""
        self._rescan()
        if what == "sessions":
            self.enqueue_sessions(kind, count, duration)
            return
        for _ in range(count):
            getattr(self, f"enqueue_{what}")()

    def enqueue_sessions(self, kind: str, count: int, duration: int) -> None:
        book = self.books[kind]
        for _ in range(count):
            start = 1_700_000_000 + next(self.counter) * 7200
            payload = {
                "bookType": book.book_type, "durationSeconds": duration,
                "durationFormatted": f"{duration // 60}m {duration % 60}s",
                "startTime": _iso(start), "endTime": _iso(start + duration),
                "startProgress": 10.0, "endProgress": 12.5, "progressDelta": 2.5,
                "startLocation": "10", "endLocation": "12",
            }
            key = ("sessions", book.fingerprint, start)
            outcome = self.store.enqueue_session(book.fingerprint, start, payload)
            self._add(Item("sessions", key, book.book_id, False,
                           (("sessions", _iso(start)[:19]),), payload), outcome)

    def enqueue_pdf_highlight(self) -> None:
        """A PDF highlight: a v1 book note (not deduplicated by the server)."""
        book = self.books["pdf"]
        n = next(self.counter)
        dt = (datetime(2024, 1, 1) + timedelta(minutes=n)).strftime("%Y-%m-%d %H:%M:%S")
        text = f"highlighted text {n}"
        payload = {"paged": True, "page": n, "text": text, "note": None, "kind": "highlight",
                   "cfi": None, "chapter": None, "color": "#FFC107", "style": "highlight",
                   "datetime": dt, "book_type": "PDF"}
        position = f"{n}@1.0,2.0"
        key = ("annotations", book.fingerprint, dt, "highlight", position)
        outcome = self.store.enqueue_annotation(book.fingerprint, dt, "highlight", position,
                                                payload)
        self._add(Item("annotations", key, book.book_id, False,
                       (("book_notes", (f"p. {n}", text)),), payload), outcome)

    def enqueue_epub_highlight(self) -> None:
        """An EPUB highlight: an in-book annotation (deduplicated by CFI)."""
        book = self.books["epub"]
        n = next(self.counter)
        dt = (datetime(2024, 2, 1) + timedelta(minutes=n)).strftime("%Y-%m-%d %H:%M:%S")
        cfi = f"epubcfi(/6/{2 * n}!/4/2,/1:0,/1:9)"
        payload = {"paged": False, "page": None, "text": f"words {n}", "note": None,
                   "kind": "highlight", "cfi": cfi, "chapter": "One", "color": "#FFC107",
                   "style": "highlight", "datetime": dt, "book_type": "EPUB"}
        position = f"/body/DocFragment[{n}]/body/p[1]/text().0"
        key = ("annotations", book.fingerprint, dt, "highlight", position)
        outcome = self.store.enqueue_annotation(book.fingerprint, dt, "highlight", position,
                                                payload)
        self._add(Item("annotations", key, book.book_id, True, (("annotations", cfi),),
                       payload), outcome)

    def enqueue_epub_note(self) -> None:
        """An EPUB note: in-book note, BookLore book note, or both (the setting)."""
        book = self.books["epub"]
        n = next(self.counter)
        dt = (datetime(2024, 3, 1) + timedelta(minutes=n)).strftime("%Y-%m-%d %H:%M:%S")
        cfi = f"epubcfi(/6/{2 * n}!/4/4,/1:0,/1:9)"
        note = f"my note {n}"
        payload = {"paged": False, "page": None, "text": f"noted words {n}", "note": note,
                   "kind": "note", "cfi": cfi, "chapter": f"Chapter {n}", "color": "#FFC107",
                   "style": "highlight", "datetime": dt, "book_type": "EPUB"}
        position = f"/body/DocFragment[{n}]/body/p[2]/text().0"
        key = ("annotations", book.fingerprint, dt, "note", position)
        parts = []
        if self.destination in ("in_book", "both"):
            parts.append(("notes_v2", cfi))
        if self.destination in ("in_booklore", "both"):
            parts.append(("book_notes", (f"Chapter {n}", note)))
        outcome = self.store.enqueue_annotation(book.fingerprint, dt, "note", position, payload)
        self._add(Item("annotations", key, book.book_id, self.destination == "in_book",
                       tuple(parts), payload), outcome)

    def enqueue_pdf_bookmark(self) -> None:
        """A PDF bookmark: no CFI, not deduplicated by the server."""
        book = self.books["pdf"]
        n = next(self.counter)
        dt = (datetime(2024, 4, 1) + timedelta(minutes=n)).strftime("%Y-%m-%d %H:%M:%S")
        payload = {"paged": True, "page": n, "title": f"p. {n}", "cfi": None, "chapter": None,
                   "text": None, "datetime": dt}
        key = ("bookmarks", book.fingerprint, dt)
        outcome = self.store.enqueue_bookmark(book.fingerprint, dt, payload)
        self._add(Item("bookmarks", key, book.book_id, False,
                       (("bookmarks", (None, f"p. {n}")),), payload), outcome)

    def _rescan(self) -> None:
        """A scan finds every earlier item again: never a second queue row, and never
        queued again once synced."""
        queued = self._queued()
        for key in self.items:
            queue, fp, *rest = key
            if queue == "sessions":
                outcome = self.store.enqueue_session(fp, rest[0], {"startTime": _iso(rest[0])})
            elif queue == "annotations":
                outcome = self.store.enqueue_annotation(fp, rest[0], rest[1], rest[2], {})
            else:
                outcome = self.store.enqueue_bookmark(fp, rest[0], {})
            assert outcome == (ALREADY_QUEUED if key in queued else ALREADY_SYNCED), (key, outcome)

    # ---------------------------------------------------------------- other writers
    @precondition(lambda self: self.store is not None and bool(self.items))
    @rule()
    def fresh_store(self) -> None:
        """The local store is lost (new computer, deleted data dir) and rebuilt from the
        same KOReader data: every item ever read is queued again, with no memory of
        what was sent; first contact must settle what the server already holds."""
        assert self.store is not None
        self.store.close()
        self.store = new_store(self.home / f"store-{next(self.stores)}.db")
        for kind, book in self.books.items():
            self.store.upsert_book(book.fingerprint, title=self.titles[kind],
                                   book_type=book.book_type)
        for key, item in self.items.items():
            queue, fp, *rest = key
            if queue == "sessions":
                outcome = self.store.enqueue_session(fp, rest[0], item.payload)
            elif queue == "annotations":
                outcome = self.store.enqueue_annotation(fp, *rest, item.payload)
            else:
                outcome = self.store.enqueue_bookmark(fp, rest[0], item.payload)
            assert outcome == QUEUED, (key, outcome)

    def _second_uploader_candidates(self) -> list[Item]:
        """Items another uploader may send too without this store being at fault for a
        double: not deduplicated by the server, nowhere on it yet, queued as pending,
        of a book this store has not yet made first contact with for that kind (after
        first contact, what another uploader sends later is its own business)."""
        if self.store is None:
            return []
        queued = self._queued()
        server = self._server()
        out = []
        for key, item in self.items.items():
            if queued.get(key) != "pending" or item.deduplicated:
                continue
            parts = [(t, m) for t, m in item.on_server if t != "notes_v2"]
            if any(server[t][(item.book, m)] for t, m in parts):
                continue
            if all(item.book not in self.store.reconciled_books(_kind(t)) for t, _ in parts):
                out.append(item)
        return out

    @precondition(lambda self: bool(self._second_uploader_candidates()))
    @rule(picks=st.lists(st.integers(0, 63), min_size=1, max_size=4, unique=True))
    def second_uploader(self, picks: list[int]) -> None:
        """Another uploader (the BookLore Sync plugin, a second computer) posts some of
        the same sessions, notes or PDF bookmarks straight to the server."""
        candidates = self._second_uploader_candidates()
        for item in {candidates[p % len(candidates)].key: candidates[p % len(candidates)]
                     for p in picks}.values():
            p = item.payload
            if item.queue == "sessions":
                start = datetime.strptime(p["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(
                    tzinfo=timezone.utc)
                end = start + timedelta(seconds=int(p["durationSeconds"]))
                self.other.post_session(item.book, p["bookType"], SessionIn(
                    start_time=start, end_time=end,
                    duration_seconds=int(p["durationSeconds"])))
            elif item.queue == "annotations":
                (_, (title, content)), = [x for x in item.on_server if x[0] == "book_notes"]
                self.other.create_book_note_v1(item.book, title=title, content=content)
            else:
                self.other.create_bookmark(item.book, cfi=None, title=p["title"])

    # ---------------------------------------------------------------- sync rules
    def _has_work(self) -> bool:
        return self.store is not None and any(self.store.counts().values())

    def _run(self, client):
        return SyncEngine(self.store, client, self.settings).run()

    @precondition(_has_work)
    @rule()
    def sync_clean(self) -> None:
        report = self._run(self.steady)
        assert report.exit_code == 0, (report.messages, report.to_json())

    def _sync_with(self, faults) -> None:
        for (path, match, method), (action, status), skip, times in faults:
            if "hang" in action and times is None:
                times = 2  # each hang costs a read timeout
            spec = {"match": match, "method": method, "skip": skip, "times": times}
            if status is not None:
                spec["status"] = status
            self.emu.state.inject_fault(path, action=action, **spec)
        try:
            report = self._run(self.client)
        finally:
            self.emu.state.clear_faults()
        assert report.exit_code in (0, 1, 3), (report.messages, report.to_json())

    @precondition(_has_work)
    @rule(aim=st.sampled_from(UNDEDUPLICATED * 2 + DEDUPLICATED),
          action=st.sampled_from(AMBIGUOUS + STORED_UNANSWERED),
          skip=st.sampled_from([0, 0, 1, 2]), times=st.sampled_from([1, 2, None]))
    def sync_with_lost_answers(self, aim, action, skip, times) -> None:
        """Writes whose answer is lost (maybe after the server stored them)."""
        self._sync_with([(aim, action, skip, times)])

    @precondition(_has_work)
    @rule(faults=st.lists(st.tuples(st.sampled_from(READS + UNDEDUPLICATED + DEDUPLICATED),
                                    st.sampled_from(REFUSED), st.sampled_from([0, 0, 1, 2]),
                                    st.sampled_from([1, 2, None])),
                          min_size=1, max_size=2))
    def sync_with_server_trouble(self, faults) -> None:
        """Requests refused (5xx), dropped or left unanswered before processing."""
        self._sync_with(faults)

    def _has_doubts(self) -> bool:
        return self.store is not None and any(
            state in ("uncertain", "in_flight") for state in self._queued().values())

    @precondition(_has_doubts)
    @rule(action=st.sampled_from(REFUSED))
    def sync_with_failing_checks(self, action) -> None:
        """Every read that checks what the server already holds fails."""
        self._sync_with([(aim, action, 0, None) for aim in CHECKS])

    @precondition(_has_work)
    @rule(method=st.sampled_from(WRITES), after=st.booleans())
    def sync_and_crash(self, method: str, after: bool) -> None:
        crashing = CrashingClient(self.client, method, after)
        try:
            self._run(crashing)
        except Crash:
            assert crashing.crashed
        else:
            assert not crashing.crashed  # nothing to send with that method

    # ---------------------------------------------------------------- invariant
    def _queued(self) -> dict[tuple, str]:
        out = {}
        for item in self.store.all_pending():
            out[(item.queue, item.fingerprint, *item.key.values())] = item.state
        return out

    def _server(self) -> dict[str, Counter]:
        state = self.emu.state
        return {
            "sessions": Counter((s["bookId"], s["startTime"][:19]) for s in state.sessions()),
            "annotations": Counter((a["bookId"], a["cfi"]) for a in state.annotations()),
            "notes_v2": Counter((n["bookId"], n["cfi"]) for n in state.notes_v2()),
            "book_notes": Counter((n["bookId"], (n["title"], n["content"]))
                                  for n in state.book_notes()),
            "bookmarks": Counter((b["bookId"], (b.get("cfi") or None, b["title"]))
                                 for b in state.bookmarks()),
        }

    @invariant()
    def exactly_once(self) -> None:
        if self.store is not None:
            self._check(final=False)

    def _check(self, *, final: bool) -> None:
        server = self._server()
        queued = self._queued()
        expected: dict[str, set] = {table: set() for table in server}
        for key, item in self.items.items():
            state = queued.get(key)
            for table, match in item.on_server:
                where = (item.book, match)
                expected[table].add(where)
                n = server[table][where]
                assert n <= 1, f"{key} is {n} times on the server ({table})"
                if state is None:
                    assert n == 1, f"{key} left the queue but is not on the server ({table})"
                elif (state == "pending" and not item.deduplicated and table != "notes_v2"
                      and item.book in self.store.reconciled_books(_kind(table))):
                    # (before first contact it may be there: the reconciliation settles it)
                    assert n == 0, f"{key} is on the server but queued as pending ({table})"
            if final:
                assert state is None, f"{key} still queued ({state})"
        for table, counts in server.items():
            stray = set(counts) - expected[table]
            assert not stray, f"the server holds items nobody enqueued: {table} {stray}"


def _kind(table: str) -> ReconcileKind:
    return {"sessions": ReconcileKind.SESSIONS, "book_notes": ReconcileKind.BOOK_NOTES,
            "bookmarks": ReconcileKind.PDF_BOOKMARKS}[table]


@pytest.fixture
def machine_env(tmp_path, monkeypatch):
    # small batches, so a run sends several per book (partial commits, mixed outcomes)
    monkeypatch.setattr(engine_module, "BATCH_SIZE", 3)
    emu = start_emulator(mode="fork", port=0, library=None)
    accounts = {"booklore_user": "demo", "booklore_password": "demo",
                "koreader_user": "demo", "koreader_password": "demo"}
    flaky = BookLoreClient(emu.base_url, connect_timeout=2, read_timeout=READ_TIMEOUT,
                           retry_backoff=0.01, **accounts)
    steady = BookLoreClient(emu.base_url, connect_timeout=5, read_timeout=15, **accounts)
    other = BookLoreClient(emu.base_url, connect_timeout=5, read_timeout=15, **accounts)
    try:
        yield emu, flaky, steady, other, tmp_path
    finally:
        flaky.close()
        steady.close()
        other.close()
        emu.stop()


def test_sync_state_machine(machine_env):
    emu, flaky, steady, other, root = machine_env
    run_state_machine_as_test(
        lambda: SyncMachine(emu, flaky, steady, root, other),
        settings=settings(max_examples=30, stateful_step_count=15, deadline=None,
                          suppress_health_check=list(HealthCheck)),
    )
