"""KOReader's statistics schema (koreader-data §3.2) and SQLite's reference grouping
query: reference material for the sample device, the benchmark and the tests."""

from __future__ import annotations

__all__ = ["SCHEMA_DDL", "WINDOW_GROUPING_SQL"]

# ------------------------------------------------------------------ reference material
#: KOReader's statistics schema (koreader-data.md §3.2), for the sample device and the
#: benchmark's generated databases.
SCHEMA_DDL = [
    """CREATE TABLE book
            (
                id integer PRIMARY KEY autoincrement,
                title text,
                authors text,
                notes      integer,
                last_open  integer,
                highlights integer,
                pages      integer,
                series text,
                language text,
                md5 text,
                total_read_time  integer,
                total_read_pages integer
            )""",
    "CREATE UNIQUE INDEX book_title_authors_md5 ON book(title, authors, md5)",
    """CREATE TABLE page_stat_data
        (
            id_book     integer,
            page        integer NOT NULL DEFAULT 0,
            start_time  integer NOT NULL DEFAULT 0,
            duration    integer NOT NULL DEFAULT 0,
            total_pages integer NOT NULL DEFAULT 0,
            UNIQUE (id_book, page, start_time),
            FOREIGN KEY(id_book) REFERENCES book(id)
        )""",
    "CREATE INDEX page_stat_data_start_time ON page_stat_data(start_time)",
    """CREATE TABLE numbers
        (
            number INTEGER PRIMARY KEY
        )""",
    """CREATE VIEW page_stat AS
        SELECT id_book, first_page + idx - 1 AS page, start_time,
               duration / (last_page - first_page + 1) AS duration
        FROM (
            SELECT id_book, page, total_pages, pages, start_time, duration,
                ((page - 1) * pages) / total_pages + 1 AS first_page,
                max(((page - 1) * pages) / total_pages + 1, (page * pages) / total_pages)
                    AS last_page,
                idx
            FROM page_stat_data
            JOIN book ON book.id = id_book
            JOIN (SELECT number as idx FROM numbers) AS N ON idx <= (last_page - first_page + 1)
        )""",
]

#: SQLite's own window-function grouping of page-stat rows into sessions (gap rule of
#: §3.5): the benchmark's baseline and the tests' oracle for :func:`iter_sessions`.
WINDOW_GROUPING_SQL = """
WITH o AS (
  SELECT id_book, page, start_time, duration, total_pages,
         LAG(id_book) OVER w AS prev_book,
         start_time - MAX(start_time + duration) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS gap
  FROM page_stat_data
  WHERE duration > 0 AND page > 0 AND total_pages > 0
  WINDOW w AS (ORDER BY start_time, id_book, page)),
m AS (
  SELECT *, SUM(CASE WHEN prev_book IS NULL OR prev_book <> id_book OR gap > :gap
                     THEN 1 ELSE 0 END) OVER (ORDER BY start_time, id_book, page) AS session_no
  FROM o)
SELECT session_no, id_book, MIN(start_time) AS started, MAX(start_time + duration) AS ended,
       SUM(duration) AS duration_seconds, COUNT(DISTINCT page) AS distinct_pages
FROM m GROUP BY session_no, id_book ORDER BY started;
"""
