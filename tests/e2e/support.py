"""Driving ``ragline dev`` from outside, as a user does: a subprocess, endpoints.json, HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# The embedded defaults, whatever the developer's shell says.
STACK_ENVIRONMENT = {
    "RAGLINE_EMBEDDINGS": "hash",
    "RAGLINE_LLM": "extractive",
    "PYTHONUNBUFFERED": "1",
}
REMOVED_VARIABLES = ("RAGLINE_DATABASE_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


def ragline_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a ``ragline`` subprocess, with ``extra`` settings on top."""
    environment = {k: v for k, v in os.environ.items() if k not in REMOVED_VARIABLES}
    return {**environment, **STACK_ENVIRONMENT, **(extra or {})}


def ragline_command(*args: str) -> list[str]:
    """``ragline ARGS`` with this interpreter (the console script's module)."""
    return [sys.executable, "-m", "ragline.dev.cli", *args]


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2
) -> T:
    """Call ``probe`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def http_json(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """Call the API with an optional JSON body; return the status and the decoded JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@dataclass
class DevProcess:
    """A ``ragline dev`` subprocess and the files its output goes to."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    log_dir: Path

    @classmethod
    def start(
        cls, data_dir: Path, *extra: str, environment: Mapping[str, str] | None = None
    ) -> DevProcess:
        """Start ``ragline dev`` on free ports with ``data_dir`` and ``environment``'s
        settings over the defaults; output goes to files."""
        log_dir = data_dir.parent / f"{data_dir.name}-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / "stdout").open("wb") as out, (log_dir / "stderr").open("wb") as err:
            process = subprocess.Popen(
                ragline_command(
                    "dev", "--api-port", "0", "--aws-port", "0", "--data-dir", str(data_dir), *extra
                ),
                stdout=out,
                stderr=err,
                env=ragline_environment(environment),
            )
        return cls(process, data_dir, log_dir)

    @property
    def endpoints_file(self) -> Path:
        return self.data_dir / "endpoints.json"

    def output(self, lines: int = 40) -> str:
        """The last lines of stdout and stderr, for failure messages."""
        parts = []
        for name in ("stdout", "stderr"):
            text = (self.log_dir / name).read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {name} ---\n" + "\n".join(text))
        return "\n".join(parts)

    def wait_for_endpoints(self, timeout: float = 120.0) -> dict[str, str]:
        """Poll for endpoints.json; fail early, with the output, if the process dies."""

        def ready() -> dict[str, str] | None:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"ragline dev exited with {self.process.returncode}\n{self.output()}"
                )
            if self.endpoints_file.exists():
                return dict(json.loads(self.endpoints_file.read_text()))
            return None

        return wait_until(ready, timeout=timeout, what="endpoints.json")

    def stop(self, timeout: float = 30.0, signum: int = signal.SIGTERM) -> int:
        """Send SIGTERM (as a supervisor would) or ``signum``; kill after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def run_ragline(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 240,
    environment: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a ``ragline`` command (with ``environment``'s settings) to completion and
    capture its output."""
    return subprocess.run(
        ragline_command(*args),
        cwd=cwd,
        env=ragline_environment(environment),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
