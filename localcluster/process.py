"""Child processes the harness starts, owns and stops: by the PID it started, never by name.

Every component of the local cluster (etcd, kube-apiserver, containerd, registries) is one
`ManagedProcess`: started on loopback with its own state directory, its output kept in a log file that
tests show on failure, and stopped with SIGTERM then SIGKILL. `restart()` reuses the same argv, so ports
and data survive a restart on purpose.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (the kernel picks it).

    The port is free only at the moment of the probe: a caller that starts a server on it must cope with losing
    it (see `localcluster.system.PrepullSystem`, which launches a service again on fresh ports).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], *, timeout: float, interval: float = 0.1, what: str = "condition") -> None:
    """Poll `check` until it returns True; raise TimeoutError naming `what` when `timeout` seconds pass.

    Exceptions raised by `check` count as "not yet": components refuse connections while they start.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}" + (f": {last_error}" if last_error else ""))


@dataclass
class ManagedProcess:
    """One child process with a log file; the harness is the only one that starts or stops it."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    stop_timeout: float = 15.0
    _popen: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    pid: int | None = field(default=None, init=False)

    def start(self) -> None:
        """Start the process in its own session (so a stop can signal its whole group), appending to its log."""
        if self.alive():
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ) | dict(self.env or {})
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        self.pid = self._popen.pid

    def alive(self) -> bool:
        """True while the process we started has not exited."""
        if self._popen is not None:
            return self._popen.poll() is None
        return self.pid is not None and pid_alive(self.pid)

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL when `kill`), then SIGKILL after `stop_timeout` seconds; idempotent."""
        if self.pid is None:
            return
        stop_pid(self.pid, timeout=self.stop_timeout, kill=kill, popen=self._popen)
        self._popen = None
        self.pid = None

    def restart(self) -> None:
        """Stop and start again with the same argv: same ports, same data."""
        self.stop()
        self.start()

    def exited_with(self) -> int | None:
        """The exit code when the process has exited, else None."""
        return None if self._popen is None else self._popen.poll()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the log, for error messages and test failure reports."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def pid_alive(pid: int) -> bool:
    """True when a process with this PID exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def stop_pid(pid: int, *, timeout: float, kill: bool = False, popen: subprocess.Popen[bytes] | None = None) -> None:
    """Signal the process group led by `pid` (we start each child as a session leader) and wait for it."""
    sig = signal.SIGKILL if kill else signal.SIGTERM
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None:
                return
        elif not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if popen is not None:
        popen.wait(timeout=10)
