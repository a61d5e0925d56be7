"""`serve` in a subprocess on a free port, an HTTP client with a cookie jar, HTML helpers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.sync.conftest import emulator_factory, kobo, library  # noqa: F401  (fixtures)


class Serve:
    def __init__(self, proc: subprocess.Popen[str], first_line: str):
        self.proc = proc
        self.first_line = first_line
        self.url = first_line.strip()
        if self.url.startswith("{"):
            self.url = json.loads(self.url)["url"]

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30, **kw)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def start_serve(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> Serve:
    full = dict(os.environ)
    full.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "booklore_sync", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=full)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until serve prints its URL (or exits)
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"serve printed no URL (exit {proc.wait(timeout)}): {err}")
    return Serve(proc, line)


@pytest.fixture
def serve_factory():
    started: list[Serve] = []

    def make(*args: str, env: dict[str, str] | None = None) -> Serve:
        s = start_serve(*args, env=env)
        started.append(s)
        return s

    yield make
    for s in started:
        code = s.stop()
        assert code == 0, f"serve exited {code} on SIGTERM"


def wait_for(predicate, timeout: float = 30.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(step)


# ------------------------------------------------------------------ HTML
class Page(HTMLParser):
    """Buttons (name, disabled, form action/method), checkboxes, inputs, text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.buttons: list[dict] = []
        self.checkboxes: list[dict] = []
        self.inputs: list[dict] = []
        self.headings: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.text_parts: list[str] = []
        self._form: dict | None = None
        self._open: list[tuple[str, dict]] = []
        self._buf: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = a
        elif tag == "input":
            entry = dict(a, form=self._form)
            self.inputs.append(entry)
            if a.get("type") == "checkbox":
                self.checkboxes.append(entry)
                self._open.append(("checkbox", entry))
                self._buf = []
        elif tag in ("button", "h1", "h2", "h3", "a", "label"):
            self._open.append((tag, dict(a, form=self._form)))
            self._buf = []

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        if self._open and (self._open[-1][0] == tag or
                           (tag == "label" and self._open[-1][0] == "checkbox")):
            kind, a = self._open.pop()
            text = " ".join("".join(self._buf).split())
            if kind == "button":
                self.buttons.append({**a, "field": a.get("name"), "name": text,
                                     "disabled": "disabled" in a})
            elif kind in ("h1", "h2", "h3"):
                self.headings.append(text)
            elif kind == "a":
                self.links.append((text, a.get("href", "")))
            elif kind == "checkbox":
                a["label"] = text
            self._buf = []

    def handle_data(self, data):
        self._buf.append(data)
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        return " ".join("".join(self.text_parts).split())

    def button(self, name: str) -> dict:
        found = [b for b in self.buttons if b["name"] == name]
        assert len(found) == 1, (name, [b["name"] for b in self.buttons])
        return found[0]

    def checkbox(self, label: str) -> dict:
        found = [c for c in self.checkboxes if c.get("label") == label]
        assert len(found) == 1, (label, [c.get("label") for c in self.checkboxes])
        return found[0]


def csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no csrf_token in the page"
    return m.group(1)


def run_job(client: httpx.Client, path: str, data: dict | None = None) -> tuple[str, dict, str]:
    """POST an action that runs as a job; wait for it; (job URL, final JSON, final page)."""
    token = csrf(client.get("/").text)
    r = client.post(path, data={"csrf_token": token, **(data or {})})
    assert r.status_code == 303, (r.status_code, r.text[:500])
    job_url = r.headers["location"]
    assert re.fullmatch(r"/jobs/[A-Za-z0-9_-]+", job_url), job_url
    final = wait_for(lambda: (lambda j: j if j["state"] != "running" else None)(
        client.get(job_url + ".json").json()), timeout=60)
    return job_url, final, client.get(job_url).text


def home_path() -> Path:
    return Path(os.environ["BOOKLORE_SYNC_HOME"])
