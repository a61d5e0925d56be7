import hashlib

import pytest

from booklore_sync.koreader.fingerprint import (
    OFFSETS,
    filename_md5,
    partial_md5,
    partial_md5_bytes,
)

from .conftest import BOOKS

VECTORS = [
    (b"", "d41d8cd98f00b204e9800998ecf8427e"),
    (bytes(i % 251 for i in range(10 * 1024)), "5b0d78ea442dac69d258c776cc8d0155"),
    # (i * 7) % 256 for i in range(3 MiB), built from its 256-byte period (fast to import)
    (bytes((i * 7) % 256 for i in range(256)) * (3 * 1024 * 1024 // 256),
     "0ccc9b8b8779a251235dc4b281f8bf80"),
    (b"\xab" * 1024, "024618a120b5d9092c28cbff01eeb692"),
    (bytes(i % 256 for i in range(2048)), "1576a94d6cb334dd126cb1c27f19e0f2"),
    (bytes(i % 256 for i in range(4097)), "133dde847d5e20a1f326f23a1d53f606"),
]


@pytest.mark.parametrize("data,expected", VECTORS)
def test_spec_vectors(data, expected, tmp_path):
    assert partial_md5_bytes(data) == expected
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    assert partial_md5(f) == expected


@pytest.mark.parametrize("name,expected", [
    ("leaves.epub", "59d481d168cca6267322f150c5f6a2a3"),
    ("tall.pdf", "41cce710f34e5ec21315e19c99821415"),
    ("juliet.epub", "cf7ce9b8d4e135c8ac340f18d1e58c85"),
    ("2col.pdf", "e7105714c0e372d7815d9651ed726b28"),
    ("sample.txt", "92b44a5765256c7db2d23564944a1643"),
    ("edge/13_6_1-BF-02.epub", "fa430be68cdde863cba728bf055af005"),
    ("edge/12_1_1-BF-03.epub", "39117137e8d5378325c93f9e198a20d3"),
    ("edge/5_3_1-BF-01.epub", "a93e1b7fd42e6e31e664a1928bd0579c"),
])
def test_fixture_books(name, expected):
    assert partial_md5(BOOKS / name) == expected


def _reference(data: bytes) -> str:
    # independent formulation: offsets 0 and 1024·4^k, stop at the first offset ≥ size
    h = hashlib.md5()
    for off in [0] + [1024 * 4 ** k for k in range(11)]:
        if off >= len(data):
            break
        h.update(data[off:off + 1024])
    return h.hexdigest()


@pytest.mark.parametrize("size", [1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097,
                                  16383, 16384, 16385, 65537])
def test_boundaries(size, tmp_path):
    data = bytes((i * 31 + 7) % 256 for i in range(size))
    f = tmp_path / "b.bin"
    f.write_bytes(data)
    assert partial_md5(f) == partial_md5_bytes(data) == _reference(data)
    whole = hashlib.md5(data).hexdigest()
    if size <= 2048:
        assert partial_md5_bytes(data) == whole
    else:
        assert partial_md5_bytes(data) != whole


def test_offsets_and_not_256():
    assert OFFSETS[:4] == (0, 1024, 4096, 16384) and OFFSETS[-1] == 1073741824
    data = bytes(range(256)) * 20
    wrong = hashlib.md5(data[256:1280]).hexdigest()
    assert partial_md5_bytes(data) != wrong


def test_filename_md5():
    assert filename_md5("leaves.epub") == "f086cbeb952dd7911a6c677d87db5dcf"
    assert filename_md5("Caf\u00e9.epub") == "e2c3111145393dc5349289bff4ad73a4"
    assert filename_md5("Cafe\u0301.epub") == "8f6526072b90be62caae8f61061f7fd1"
