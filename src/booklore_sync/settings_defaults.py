"""Defaults of the settings of spec §7 (flat dotted keys).

Kept apart from ``config.py`` so the importer and the engine can read the
defaults without importing keyring or TOML machinery.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "sessions.gap_seconds": 300,
    "sessions.min_duration_seconds": 30,
    "sessions.min_pages": 5,
    "sessions.detection_mode": "duration",
    "sessions.progress_decimal_places": 2,
    "annotations.notes_destination": "in_book",
    "sync.ratings": True,
    "sync.annotations": True,
    "sync.bookmarks": True,
    "sync.progress": True,
    "sync.sessions": True,
    "device.timezone": None,  # None = the local zone
    "device.file_times": True,
    "device.name": "booklore-sync",
    "scan.path_map": {},
    "sync.settle_seconds": 60,
    "http.connect_timeout_seconds": 10,
    "http.read_timeout_seconds": 30,
    "http.max_concurrency": 4,
}
