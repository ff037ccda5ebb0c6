"""What the server counts for Prometheus: one registry per server process (per core).

A registry of its own rather than prometheus-client's global one, so every app (and every test)
starts from zero. Counted where the facts are: the request watcher (`web/watch.py`) counts
requests, bytes and refusals; the core times finishing and flushing; `/metrics` reads the gauges
(uploads in progress, free space) from the books and the disk when scraped.

Without `--metrics` nothing can read them: every metric is then `Uncounted` and prometheus-client
is never imported (1.3 MiB of a server's RSS).
"""

from __future__ import annotations

from typing import Any

# Finishing a file is hashing the tail, flushing and renaming: from milliseconds to minutes.
DURATION_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Uncounted:
    """Every metric of a server without `/metrics`: takes each count and keeps nothing."""

    def labels(self, *values: str) -> Uncounted:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


def _uncounted(*args: Any, **kwargs: Any) -> Any:
    """Stands in for each metric's and the registry's constructor when nothing is counted."""
    return Uncounted()


class Metrics:
    def __init__(self, counting: bool = True) -> None:
        CollectorRegistry: Any = _uncounted
        Counter: Any = _uncounted
        Gauge: Any = _uncounted
        Histogram: Any = _uncounted
        if counting:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.uploads_in_progress = Gauge(
            "pyfiledrop_uploads_in_progress", "Uploads started and not yet stored", registry=r
        )
        self.free_bytes = Gauge(
            "pyfiledrop_free_bytes", "Free space on the storage filesystem", registry=r
        )
        self.received_bytes = Counter(
            "pyfiledrop_received_bytes",
            "Upload body bytes received, by protocol",
            ["protocol"],
            registry=r,
        )
        self.stored_bytes = Counter(
            "pyfiledrop_stored_bytes", "Bytes of files stored (published)", registry=r
        )
        self.files_stored = Counter("pyfiledrop_files_stored", "Files stored", registry=r)
        self.chunk_requests = Counter(
            "pyfiledrop_chunk_requests",
            "Requests carrying upload bytes, by protocol and outcome (ok, refused, error, aborted)",
            ["protocol", "outcome"],
            registry=r,
        )
        self.refusals = Counter(
            "pyfiledrop_refusals",
            "Requests refused (4xx), by HTTP status and error code",
            ["status", "code"],
            registry=r,
        )
        self.finish_seconds = Histogram(
            "pyfiledrop_finish_seconds",
            "Time to finish a complete upload (hash, flush, publish)",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.fsync_seconds = Histogram(
            "pyfiledrop_fsync_seconds",
            "Time to flush a finished file to disk",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.downloads = Counter(
            "pyfiledrop_downloads", "Downloads served (200 or 206)", registry=r
        )
        self.sent_bytes = Counter(
            "pyfiledrop_download_bytes", "Bytes sent by downloads", registry=r
        )
        self.janitor_runs = Counter(
            "pyfiledrop_janitor_runs", "Janitor passes, by outcome", ["outcome"], registry=r
        )
