"""Builds small synthetic EPUBs for tests."""

from __future__ import annotations

import zipfile
from pathlib import Path


def make_epub(path: Path, docs: list[tuple[str, str, str]], *, opf_dir: str = "OEBPS",
              extra_manifest: str = "", spine_attrs: dict[str, str] | None = None,
              metadata: str = "<dc:title>T</dc:title>", spine_extra: str = "") -> Path:
    """docs: (id, href, xhtml body or full document, media type default xhtml)."""
    spine_attrs = spine_attrs or {}
    manifest = []
    spine = []
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/container.xml",
                   '<?xml version="1.0"?><container version="1.0" '
                   'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
                   f'<rootfile full-path="{opf_dir}/content.opf" '
                   'media-type="application/oebps-package+xml"/></rootfiles></container>')
        for item in docs:
            ident, href, content = item[0], item[1], item[2]
            media = item[3] if len(item) > 3 else "application/xhtml+xml"
            if not content.lstrip().startswith("<?xml") and "<html" not in content:
                content = ('<?xml version="1.0" encoding="utf-8"?>'
                           '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>x</title>'
                           f'</head><body>{content}</body></html>')
            z.writestr(f"{opf_dir}/{href}", content.encode("utf-8"))
            manifest.append(f'<item id="{ident}" href="{href}" media-type="{media}"/>')
            attrs = spine_attrs.get(ident, "")
            spine.append(f'<itemref idref="{ident}" {attrs}/>')
        opf = ('<?xml version="1.0" encoding="utf-8"?>'
               '<package xmlns="http://www.idpf.org/2007/opf" version="2.0" '
               'xmlns:dc="http://purl.org/dc/elements/1.1/" '
               'xmlns:opf="http://www.idpf.org/2007/opf">'
               f'<metadata>{metadata}</metadata>'
               f'<manifest>{"".join(manifest)}{extra_manifest}</manifest>'
               f'<spine>{spine_extra}{"".join(spine)}</spine></package>')
        z.writestr(f"{opf_dir}/content.opf", opf)
    return path
