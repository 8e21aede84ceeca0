"""Start ``fireside serve`` as a real subprocess on a free loopback port, for the tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(r"serving at (http://127\.0\.0\.1:(\d+)/v1)")


class Served:
    """A running ``fireside serve``; ``stop()`` sends SIGTERM and returns the exit status."""

    def __init__(self, proc: subprocess.Popen, base_url: str, log: Path) -> None:
        self.proc, self.base_url, self.log = proc, base_url, log
        self.port = int(base_url.rsplit(":", 1)[1].split("/")[0])

    @property
    def root(self) -> str:
        return self.base_url[: -len("/v1")]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def start_server(
    log_dir: Path, *args: str, home: Path | None = None, env: dict | None = None
) -> Served:
    """``fireside serve --port 0 ARGS``; waits until it prints its address."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"serve-{time.monotonic_ns()}.log"
    full_env = dict(os.environ, **(env or {}))
    if home is not None:
        full_env["FIRESIDE_HOME"] = str(home)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", "0", *args],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = READY.search(log.read_text(errors="replace"))
        if match:
            return Served(proc, match.group(1), log)
        if proc.poll() is not None:
            raise RuntimeError(f"fireside serve exited ({proc.returncode}):\n{log.read_text()}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"fireside serve did not start in time:\n{log.read_text()}")
