"""Start and stop worker processes (demo, tests, benchmarks) and talk to their web endpoint."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .embedded import free_port
from ..errors import DistillguardError


class WorkerError(DistillguardError):
    """A worker process did not start or answer."""


@dataclass
class WorkerProcess:
    """``distillguard worker`` in a child process, configured only through ``DG_*`` env."""

    bootstrap: str
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    web_port: int | None = None
    log_path: Path | None = None
    # The CLI subcommand and its arguments: ``("worker",)``, or ``("router", "--routes", F)``.
    command: tuple[str, ...] = ("worker",)
    # Where the child runs: ``python -m`` imports from its working directory first (an older
    # tree on PYTHONPATH, benchmarks/pipeline.py --base, must not be shadowed by this one).
    cwd: Path | None = None
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _log: object = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def exit_code(self) -> int | None:
        """The process's exit code once it has ended by itself, else None."""
        return self._proc.poll() if self._proc else None

    def start(self, ready_timeout: float = 90.0) -> "WorkerProcess":
        self.web_port = self.web_port or free_port()
        env = dict(os.environ)
        env.update({"DG_KAFKA_BOOTSTRAP": self.bootstrap, "DG_DATA_DIR": str(self.data_dir),
                    "DG_WEB_PORT": str(self.web_port), "PYTHONUNBUFFERED": "1"})
        env.update(self.env)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_path or self.data_dir / "worker.log"
        self._log = open(log_path, "ab")
        self._proc = subprocess.Popen([sys.executable, "-m", "distillguard.cli", *self.command], env=env,
                                      cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        self.wait_ready(ready_timeout, log_path)
        return self

    def wait_ready(self, timeout: float, log_path: Path | None = None) -> None:
        """Ready = the web endpoint answers and the worker has partitions assigned."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
                raise WorkerError(f"worker exited with code {self._proc.returncode}:\n{tail}")
            try:
                self.get("/health", timeout=1.0)
                return
            except (OSError, urllib.error.URLError, ValueError):
                time.sleep(0.25)
        raise WorkerError(f"worker not ready after {timeout:.0f}s")

    def get(self, path: str, timeout: float = 10.0) -> dict:
        with urllib.request.urlopen(self.request(path), timeout=timeout) as resp:
            return json.loads(resp.read())

    def request(self, path: str) -> urllib.request.Request:
        """A GET of ``path`` carrying the process's web token (DG_WEB_TOKEN), if it has one."""
        env = {**os.environ, **self.env}
        names = ("DG_ROUTER_WEB_TOKEN", "DG_WEB_TOKEN") if self.command[0] == "router" else ("DG_WEB_TOKEN",)
        token = next((env[name] for name in names if env.get(name)), None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return urllib.request.Request(self.url + path, headers=headers)

    def stop(self, timeout: float = 30.0) -> int | None:
        proc, self._proc = self._proc, None
        code = None
        if proc is not None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
            code = proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        proc, self._proc = self._proc, None
        if proc is not None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
