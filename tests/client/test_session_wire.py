"""SessionIn.of_wire makes the same object as the constructor (every field set)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from booklore_sync.booklore.session_models import SessionIn


def test_of_wire_is_the_constructor_with_only_the_wire_item():
    start = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
    end = datetime(2024, 5, 1, 10, 30, tzinfo=timezone.utc)
    wire = {"startTime": "2024-05-01T10:00:00Z", "endTime": "2024-05-01T10:30:00Z",
            "durationSeconds": 1800}
    made = SessionIn.of_wire(start, end, 1800, wire)
    built = SessionIn(start_time=start, end_time=end, duration_seconds=1800, wire=wire)
    for f in dataclasses.fields(SessionIn):
        assert getattr(made, f.name) == getattr(built, f.name), f.name
    assert made == built
    assert made.to_json(book_id=3, book_type="EPUB") == {"bookId": 3, "bookType": "EPUB", **wire}
    assert made.key() == built.key()
