"""Long actions (sync, automatic match, re-match all) as background jobs.

A job runs one library call in a thread; its page polls it (``GET /jobs/{id}``
with a meta refresh, or ``/jobs/{id}.json`` from the inline script).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from booklore_sync.web.actions import JobResult, Progress

log = logging.getLogger(__name__)
KEEP_JOBS = 50


@dataclass
class Job:
    id: str
    kind: str                      # "sync", "match", "rematch"
    title: str                     # what the running page says ("Syncing…")
    state: str = "running"         # running, done, failed
    phase: str = "resolve"
    done: int = 0
    total: int = 0
    result: JobResult | None = None
    error: str | None = None
    started: float = field(default_factory=time.monotonic)

    def progress(self, phase: str, done: int, total: int) -> None:
        self.phase, self.done, self.total = phase, done, total

    def as_json(self) -> dict[str, Any]:
        summary = None
        if self.state != "running" and self.result is not None:
            summary = self.result.summary
        return {"state": self.state, "phase": self.phase, "done": self.done,
                "total": self.total, "summary": summary}


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, kind: str, title: str, work: Callable[[Progress], JobResult]) -> Job:
        job = Job(id=secrets.token_urlsafe(12), kind=kind, title=title)
        with self._lock:
            if len(self._jobs) >= KEEP_JOBS:
                finished = [j for j in self._jobs.values() if j.state != "running"]
                for old in sorted(finished, key=lambda j: j.started)[: len(finished) // 2 or 1]:
                    del self._jobs[old.id]
            self._jobs[job.id] = job

        def run() -> None:
            try:
                job.result = work(job.progress)
                job.state = "failed" if job.result.busy else "done"
            except Exception as exc:  # never a traceback on the page
                log.exception("the %s job failed", kind)
                job.error = f"internal error: {exc.__class__.__name__}: {exc}"
                job.state = "failed"

        threading.Thread(target=run, name=f"job-{kind}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)
