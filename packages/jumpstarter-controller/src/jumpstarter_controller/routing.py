"""Which router a Dial gets: one whose labels the exporter carries (the most of them), then the
least loaded; the built-in router on the controller's own port when none is configured."""

from __future__ import annotations

import time
from collections import deque

from jumpstarter_controller.config import RouterEntry

__all__ = ["RouterChoice"]

# Dials counted for "least loaded": those of the last minute.
LOAD_WINDOW_SECONDS = 60.0


class RouterChoice:
    def __init__(self, routers: list[RouterEntry], builtin_endpoint: str) -> None:
        self.routers = routers
        self.builtin_endpoint = builtin_endpoint
        self._dials: dict[str, deque[float]] = {}

    def pick(self, exporter_labels: dict[str, str]) -> str:
        if not self.routers:
            return self.builtin_endpoint
        scored = [
            (len(router.labels), router.endpoint)
            for router in self.routers
            if all(exporter_labels.get(key) == value for key, value in router.labels.items())
        ]
        if not scored:
            scored = [(0, router.endpoint) for router in self.routers]
        best = max(score for score, _ in scored)
        endpoint = min((e for s, e in scored if s == best), key=self.load)
        self._dials.setdefault(endpoint, deque()).append(time.monotonic())
        return endpoint

    def load(self, endpoint: str) -> int:
        dials = self._dials.get(endpoint)
        if not dials:
            return 0
        horizon = time.monotonic() - LOAD_WINDOW_SECONDS
        while dials and dials[0] < horizon:
            dials.popleft()
        return len(dials)
