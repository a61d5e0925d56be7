"""KOReader's partial MD5 document fingerprint (koreader-data.md §1.1); the code lives in
``booklore_sync.common.partial_md5``, shared with the emulator."""

from booklore_sync.common.partial_md5 import *  # noqa: F403 - the shared implementation
