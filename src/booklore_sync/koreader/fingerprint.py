"""KOReader's partial MD5 document fingerprint (koreader-data.md §1.1); the code lives in
``booklore_sync.common.partial_md5``, shared with the emulator."""

from booklore_sync.common.partial_md5 import OFFSETS, SAMPLE_SIZE, filename_md5, partial_md5, partial_md5_bytes, partial_md5_stream  # noqa: F401, E501
