"""scan through the real entry point (spec §5, §6.4)."""

from __future__ import annotations

import json
import shutil

from tests.conftest import FIXTURES, cli_json, run_cli


def _kobo(tmp_path):
    dst = tmp_path / "kobo"
    shutil.copytree(FIXTURES / "kobo", dst)
    return dst


def test_scan_json_shape_and_idempotence(tmp_path):
    kobo = _kobo(tmp_path)
    code, data = cli_json("scan", str(kobo), "--json")
    assert code == 0
    assert {"books", "queued", "errors"} <= set(data)
    assert set(data["queued"]) == {"sessions", "annotations", "ratings", "bookmarks", "progress"}
    assert data["books"] == 4 and data["errors"] == []
    assert data["queued"]["ratings"] == 3 and data["queued"]["sessions"] > 0
    _, status = cli_json("status", "--json")
    assert status["pending"] == data["queued"]
    code, again = cli_json("scan", str(kobo), "--json")
    assert code == 0 and sum(again["queued"].values()) == 0 and again["books"] == 4


def test_scan_dry_run_changes_nothing(tmp_path):
    kobo = _kobo(tmp_path)
    code, data = cli_json("scan", str(kobo), "--dry-run", "--json")
    assert code == 0 and data["queued"]["annotations"] > 0
    _, status = cli_json("status", "--json")
    assert sum(status["pending"].values()) == 0 and status["book_cache"]["total"] == 0
    proc = run_cli("scan", str(kobo), "--dry-run")
    assert proc.returncode == 0 and "would queue" in proc.stdout


def test_scan_missing_source_exit_2(tmp_path):
    proc = run_cli("scan", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "nowhere" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("scan", str(empty), "--json")
    assert proc.returncode == 2
    data = json.loads(proc.stdout)  # the scan shape with the error object (spec §6.4)
    assert data["books"] == 0 and data["error"]["type"] == "usage" and data["exit_code"] == 2


def test_scan_reports_broken_sidecar_and_goes_on(tmp_path):
    kobo = _kobo(tmp_path)
    broken = kobo / "Books" / "tall.sdr" / "metadata.pdf.lua"
    broken.write_bytes(b"return { [\"summary\"] = { ")
    code, data = cli_json("scan", str(kobo), "--json")
    assert code == 0
    files = [e["file"] for e in data["errors"]]
    assert any("tall.sdr" in f for f in files)
    assert all(e["error"] for e in data["errors"])
    assert data["queued"]["annotations"] > 0  # the other books still imported
    text = run_cli("scan", str(kobo))
    assert text.returncode == 0
