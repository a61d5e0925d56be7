"""One routing mechanism for the BookLore API and the control API: templates with
``{name}`` segments, an optional condition per route, and "path matched, method did not"."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Handler = Callable[..., Any]


@dataclass
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler
    when: Callable[[], bool] | None = None  # the route exists only while this holds


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler,
            when: Callable[[], bool] | None = None) -> None:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"
        self.routes.append(Route(method.upper(), template, re.compile(regex), handler, when))

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """``(handler, params, path_matched)``: the handler of the first live route for
        this method and path; else None, and whether a live route had the path."""
        path_matched = False
        for route in self.routes:
            m = route.pattern.match(path)
            if m is None or (route.when is not None and not route.when()):
                continue
            if route.method != method:
                path_matched = True
                continue
            return route.handler, m.groupdict(), True
        return None, {}, path_matched
