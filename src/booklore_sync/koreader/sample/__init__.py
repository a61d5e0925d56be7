"""A sample KOReader device, generated from scratch (for ``booklore-sync demo``).

:func:`build_sample_device` writes a Kobo-style folder::

    <root>/Books/<book>.epub|.pdf            the books (two EPUBs, one PDF)
    <root>/Books/<book>.sdr/metadata.*.lua   KOReader sidecars (current format)
    <root>/.adds/koreader/settings.reader.lua, history.lua
    <root>/.adds/koreader/settings/statistics.sqlite3

plus a separate library folder with byte-identical copies of the books, for the
emulator's ``--library``.  Everything is produced here at run time: the prose is
this project's own, the EPUBs are zipped by hand, the PDF is written object by
object, the sidecars go through :func:`booklore_sync.koreader.luatable.dump`
and the statistics database uses KOReader's schema (koreader-data.md §3.2).

The EPUB positions are real: every XPointer is computed from the XHTML this
module writes (paragraph index, text-node index, code-point offset), so the
XPointer → CFI conversion validates against the highlighted text.  The book
files are deterministic (fixed zip timestamps), so their fingerprints are the
same on every run; the reading dates are placed a couple of weeks before
``now``, far past the session cool-down.
"""

from booklore_sync.koreader.sample.content import DEVICE_ID, SampleDevice
from booklore_sync.koreader.sample.device import build_sample_device

__all__ = ["SampleDevice", "build_sample_device", "DEVICE_ID"]
