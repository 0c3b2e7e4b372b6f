"""Running a real Prometheus from tests: Debian's ``prometheus`` and ``promtool``, on 127.0.0.1,
a free port, a private data directory, stopped by whoever started it.

prometheus or promtool missing: the tests skip, unless FS_GUARD_REQUIRE_PROMETHEUS is set (CI
sets it), and then they fail (``need_prometheus``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

from redis_support import free_port

REQUIRE_ENV = "FS_GUARD_REQUIRE_PROMETHEUS"
#: Longest wait for Prometheus to start, or to have scraped what a test expects (s).
WAIT = 30.0


def prometheus_required() -> bool:
    """True when a missing Prometheus must fail the tests instead of skipping them."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "no", "false")


def need_prometheus() -> Dict[str, str]:
    """The paths of prometheus and promtool; skips or fails when either is missing."""
    import pytest

    found = {name: shutil.which(name) for name in ("prometheus", "promtool")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        reason = f"{' and '.join(missing)} not installed (Debian: apt-get install prometheus)"
        if prometheus_required():
            pytest.fail(f"{reason} (and {REQUIRE_ENV} is set, so this is a failure, not a skip)", pytrace=False)
        pytest.skip(f"{reason}; set {REQUIRE_ENV}=1 to make this a failure")
    return {name: str(path) for name, path in found.items()}


class PrometheusServer:
    """One private Prometheus scraping ``targets`` (job ``fs-guard``) every second, with ``rules``."""

    def __init__(self, binary: str, directory: Path, targets: List[str], rules: Optional[Path] = None) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: Optional[subprocess.Popen] = None
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)] if rules else [],
            "scrape_configs": [{"job_name": "fs-guard", "static_configs": [{"targets": targets}]}],
        }
        self.config = directory / "prometheus.yml"
        self.config.write_text(json.dumps(config))  # JSON is YAML

    def start(self) -> "PrometheusServer":
        log = open(self.directory / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [self.binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=log)
        log.close()
        self.wait_until(self.ready, "Prometheus to be ready")
        return self

    def ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def log(self) -> str:
        path = self.directory / "prometheus.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of an HTTP API answer; an error answer fails the test with its message."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            answer = json.load(error)
        assert answer["status"] == "success", f"{path} {params}: {answer.get('errorType')}: {answer.get('error')}"
        return answer["data"]

    def query(self, expr: str) -> List[Dict[str, Any]]:
        """An instant query's vector (``[{"metric": {...}, "value": [t, "v"]}, ...]``)."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        return data["result"]

    def scalar(self, expr: str) -> Optional[float]:
        """The value of a query that yields at most one series; None when it yields none."""
        result = self.query(expr)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def wait_until(self, condition: Any, what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {WAIT:g} s for {what}; prometheus log: {self.log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
