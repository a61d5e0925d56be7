import sqlite3

import pytest

from booklore_sync.koreader.statistics import (
    WINDOW_GROUPING_SQL,
    StatisticsError,
    derive_sessions,
    format_duration,
    iter_sessions,
    keep_session,
    open_statistics,
    round_half_up,
    session_payload,
)
from booklore_sync.settings_defaults import DEFAULTS

from .statsdb import FIXTURE_DB, make_db

NOW = 1800000000


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (59, "59s"), (60, "1m"), (90, "1m 30s"), (3600, "1h"), (3601, "1h 1s"),
    (3661, "1h 1m 1s"), (3909, "1h 5m 9s"), (5400, "1h 30m"), (7384, "2h 3m 4s"), (-1, "0s"),
    ("x", "0s"), (None, "0s"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("v,dp,out", [
    (33.335, 2, 33.34), (33.333, 2, 33.33), (50.05, 1, 50.1), (99.99, 1, 100.0), (0.5, 0, 1.0),
    (99.9, 0, 100.0), (2.675, 2, 2.68), (1.005, 2, 1.0),
])
def test_round_half_up(v, dp, out):
    assert round_half_up(v, dp) == out


def _fixture_sessions(settings=DEFAULTS):
    books, sessions, last_end = derive_sessions(FIXTURE_DB, settings, NOW)
    return books, sessions, last_end


def test_fixture_sessions_match_readme():
    books, sessions, last_end = _fixture_sessions()
    kept = [s for s in sessions if s.final and keep_session(s, DEFAULTS, NOW) is None]
    by_title: dict[str, list] = {}
    for s in kept:
        by_title.setdefault(books[s.id_book].title, []).append(s)
    assert {t: len(v) for t, v in by_title.items()} == {
        "Leaves of Grass": 5, "Romeo and Juliet": 2, "2col": 1}
    assert {t: sum(s.duration for s in v) for t, v in by_title.items()} == {
        "Leaves of Grass": 10993, "Romeo and Juliet": 4690, "2col": 373}
    assert sum(s.duration for s in kept) == 16056
    leaves = by_title["Leaves of Grass"]
    P = [session_payload(s, "EPUB", 2) for s in leaves]
    assert [(p["startTime"], p["endTime"], p["durationSeconds"], p["startLocation"],
             p["endLocation"]) for p in P] == [
        ("2024-03-01T20:05:00Z", "2024-03-01T20:56:38Z", 2953, "12", "64"),
        ("2024-03-02T07:40:00Z", "2024-03-02T08:07:17Z", 1490, "65", "88"),
        ("2024-03-02T21:10:00Z", "2024-03-02T21:55:02Z", 2672, "246", "292"),
        ("2024-03-04T22:30:00Z", "2024-03-04T23:24:51Z", 3119, "930", "985"),
        ("2024-03-05T21:00:00Z", "2024-03-05T21:12:44Z", 759, "985", "968"),
    ]
    # read backwards: 985 → 968 of 1109 (88.82 % → 87.29 %)
    assert (P[4]["startProgress"], P[4]["endProgress"], P[4]["progressDelta"]) == (
        88.82, 87.29, -1.53)
    assert P[4]["durationFormatted"] == "12m 39s"
    jul = [session_payload(s, "EPUB", 2) for s in by_title["Romeo and Juliet"]]
    assert [(p["startTime"], p["endTime"], p["startLocation"], p["endLocation"]) for p in jul] == [
        ("2024-03-03T15:00:00Z", "2024-03-03T15:50:07Z", "1", "60"),
        ("2024-03-06T20:00:00Z", "2024-03-06T20:32:25Z", "64", "92")]
    # layout changed 198 → 212 pages
    assert jul[0]["startProgress"] == round_half_up(1 / 198 * 100, 2) == 0.51
    assert jul[1]["endProgress"] == round_half_up(92 / 212 * 100, 2) == 43.4
    two = session_payload(by_title["2col"][0], "PDF", 2)
    assert (two["startTime"], two["endTime"], two["startProgress"], two["endProgress"]) == (
        "2023-11-02T20:12:10Z", "2023-11-02T20:18:23Z", 50.0, 100.0)
    # the dropped ones: the 18 s leaves session and tall.pdf's unmoved 120 s session
    dropped = {(books[s.id_book].title, keep_session(s, DEFAULTS, NOW)) for s in sessions
               if keep_session(s, DEFAULTS, NOW)}
    assert dropped == {("Leaves of Grass", "shorter than sessions.min_duration_seconds"),
                       ("tall", "the position did not move")}
    assert last_end[4] == 1709812920


def test_matches_sqlite_window_query():
    books, sessions, _ = _fixture_sessions()
    conn = sqlite3.connect(f"{FIXTURE_DB.as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute(WINDOW_GROUPING_SQL, {"gap": 300}).fetchall()
    except sqlite3.OperationalError:  # WAL file needs a writable dir: use a copy
        with open_statistics(FIXTURE_DB) as c2:
            rows = c2.execute(WINDOW_GROUPING_SQL, {"gap": 300}).fetchall()
    finally:
        conn.close()
    assert [(s.id_book, s.start, s.end, s.duration) for s in sessions] == [
        (r[1], r[2], r[3], r[4]) for r in rows]


def test_pages_mode_and_gap_setting():
    settings = dict(DEFAULTS, **{"sessions.detection_mode": "pages", "sessions.min_pages": 20})
    books, sessions, _ = _fixture_sessions(settings)
    kept = [s for s in sessions if keep_session(s, settings, NOW) is None]
    # pages moved ≥ 20: leaves 12→64, 65→88, 246→292, 930→985; juliet 1→60, 64→92 (28 in
    # the first layout: round(92·212/212)… 92 of 212 → same layout → 28)
    assert len(kept) == 6
    huge = dict(DEFAULTS, **{"sessions.gap_seconds": 10 ** 9})
    _, merged, _ = derive_sessions(FIXTURE_DB, huge, NOW)
    # one session per run of the same book in time order
    # one session per run of a book: 2col, leaves, juliet, leaves, juliet, tall
    assert len(merged) == 6


def test_cooldown_and_clock(tmp_path):
    db = make_db(tmp_path / "s.sqlite3", [(1, "A", "N/A", "a" * 32), (2, "B", "N/A", "b" * 32)], [
        (1, 1, 1700000000, 60, 100), (1, 2, 1700000060, 60, 100),
        (2, 1, 1700000200, 60, 100), (2, 5, 1700000260, 60, 100),
        (0, 0, 0, 0, 0),
    ])
    with open_statistics(db) as conn:
        s = list(iter_sessions(conn, 300, 1700000400))
    # A is followed by another book's row: final; B ended 80 s before "now": held back
    assert [(x.id_book, x.final) for x in s] == [(1, True), (2, False)]
    with open_statistics(db) as conn:
        s = list(iter_sessions(conn, 300, 1700000700))
    assert s[-1].final
    assert keep_session(s[0], DEFAULTS, 1600000000) == "clock: time more than a day after the scan"
    early = make_db(tmp_path / "e.sqlite3", [(1, "A", "N/A", "a" * 32)],
                    [(1, 1, 1000, 60, 10), (1, 3, 1060, 60, 10)])
    with open_statistics(early) as conn:
        s = list(iter_sessions(conn, 300, NOW))
    assert keep_session(s[0], DEFAULTS, NOW) == "clock: time before 2007-01-01"


def test_gap_measured_from_max_end(tmp_path):
    # a long capped row followed by a row starting 290 s after its end: same session
    db = make_db(tmp_path / "g.sqlite3", [(1, "A", "N/A", "a" * 32)], [
        (1, 1, 1700000000, 120, 50), (1, 2, 1700000410, 30, 50), (1, 3, 1700000741, 30, 50)])
    with open_statistics(db) as conn:
        s = list(iter_sessions(conn, 300, NOW))
    assert [(x.start, x.end, x.duration) for x in s] == [
        (1700000000, 1700000440, 150), (1700000741, 1700000771, 30)]


def test_wal_copy_leaves_source_untouched(tmp_path):
    src = make_db(tmp_path / "w.sqlite3", [(1, "A", "N/A", "a" * 32)],
                  [(1, 1, 1700000000, 60, 10), (1, 3, 1700000060, 60, 10)], wal=True)
    # keep a writer open so that the rows live in the -wal file
    writer = sqlite3.connect(src)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("INSERT INTO page_stat_data VALUES (1, 5, 1700000120, 60, 10)")
    writer.commit()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert "w.sqlite3-wal" in before
    with open_statistics(src) as conn:
        s = list(iter_sessions(conn, 300, NOW))
    assert s[0].rows == 3 and s[0].last_page == 5
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert before == after
    writer.close()


def test_corrupt_and_old_databases(tmp_path):
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StatisticsError, match="junk.sqlite3"):
        derive_sessions(junk, DEFAULTS, NOW)
    trunc = tmp_path / "trunc.sqlite3"
    trunc.write_bytes(FIXTURE_DB.read_bytes()[:5000])
    with pytest.raises(StatisticsError, match="trunc.sqlite3"):
        derive_sessions(trunc, DEFAULTS, NOW)
    old = make_db(tmp_path / "old.sqlite3", [], [], version=20201022)
    with pytest.raises(StatisticsError, match="too old"):
        derive_sessions(old, DEFAULTS, NOW)
    other = tmp_path / "other.sqlite3"
    c = sqlite3.connect(other)
    c.execute("PRAGMA user_version = 20221111")
    c.execute("CREATE TABLE t(x)")
    c.commit()
    c.close()
    with pytest.raises(StatisticsError, match="not a KOReader statistics database"):
        derive_sessions(other, DEFAULTS, NOW)
