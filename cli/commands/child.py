"""Run a server (`bentoml serve`, `mlflow ui`) as a child of the CLI, and never leave it behind.

The port is checked first, so a busy one is one line instead of a server's traceback. The child
runs in its own process group (session): Ctrl-C in the terminal reaches only this process, which
forwards SIGINT/SIGTERM/SIGHUP to the child's group. BentoML's workers (circus) call setsid and
leave that group, so every descendant seen while the child runs is tracked too: after
`GRACE_SECONDS` whatever is left of the group and of those descendants gets SIGKILL.

The child's stdout is the terminal (the server's own log); its stderr is this process's fd 2,
reports/cli.log unless `--verbose` (`paycycle.console`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping

from paycycle.errors import ConfigError, UnavailableError

GRACE_SECONDS = 20.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
POLL_SECONDS = 0.1  # while stopping
WATCH_SECONDS = 1.0  # while running: how often the list of descendants is refreshed


def check_port_free(host: str, port: int) -> None:
    """Bind host:port once and let it go, as the server is about to.

    Raises:
        UnavailableError: something already listens on host:port.
        ConfigError: the host does not resolve or the port cannot be bound (e.g. < 1024).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot resolve ({exc.strerror})") from None
    with socket.socket(family, kind, proto) as sock:
        # servers set SO_REUSEADDR too: a port in TIME_WAIT is free for them, a listener is not
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UnavailableError(
                    f"{host}:{port}: address already in use; stop what runs there or pick --port"
                ) from None
            raise ConfigError(f"{host}:{port}: cannot bind ({exc.strerror})") from None


def run_child(
    cmd: list[str], env: Mapping[str, str] | None = None, grace: float = GRACE_SECONDS
) -> int:
    """Run `cmd` in a new process group until it exits or this process is told to stop.

    Args:
        cmd: the server's command line.
        env: its environment (default: this process's).
        grace: seconds the child and its workers get to exit after a stop signal.

    Returns:
        The child's exit code, or 0 when it stopped because this process was asked to stop.
    """
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    stop_at: list[float] = []  # set by the first stop signal: when to stop asking nicely
    family: dict[int, int] = {}  # pid -> start time of every descendant seen

    def forward(signum: int, _frame: object) -> None:
        if not stop_at:
            stop_at.append(time.monotonic() + grace)
        _signal_group(proc.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        while not (stop_at and time.monotonic() > stop_at[0]):
            family |= _descendants(proc.pid)
            try:
                proc.wait(WATCH_SECONDS)
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        left = stop_at[0] - time.monotonic() if stop_at else grace
        stop_child(proc, family, max(left, 0.0))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stop_at else proc.returncode


def stop_child(proc: subprocess.Popen, family: dict[int, int], grace: float) -> None:
    """SIGTERM the child's group, then any descendant left; SIGKILL all after `grace` s."""
    deadline = time.monotonic() + grace
    if proc.poll() is None:
        family |= _descendants(proc.pid)
        _signal_group(proc.pid, signal.SIGTERM)
        _wait_until(lambda: proc.poll() is not None, deadline)
    for pid in _running(family):  # workers in their own session, orphaned or not
        _signal(pid, signal.SIGTERM)
    _wait_until(lambda: not _running(family), deadline)
    _signal_group(proc.pid, signal.SIGKILL)
    for pid in _running(family):
        _signal(pid, signal.SIGKILL)
    proc.wait()


def _wait_until(done: Callable[[], bool], deadline: float) -> None:
    while not done() and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already gone
        os.killpg(pgid, signum)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _processes() -> dict[int, tuple[int, int, bytes]]:
    """Linux /proc: pid -> (parent pid, start time, state); empty elsewhere."""
    table = {}
    with contextlib.suppress(FileNotFoundError), os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()  # after "pid (comm)"
            except OSError:  # exited while we looked
                continue
            table[int(entry.name)] = (int(fields[1]), int(fields[19]), fields[0])
    return table


def _descendants(pid: int) -> dict[int, int]:
    """Every process below `pid`, with its start time (a reused pid is then not mistaken)."""
    table = _processes()
    found: dict[int, int] = {}
    parents = [pid]
    while parents:
        parent = parents.pop()
        for child, (ppid, start, _) in table.items():
            if ppid == parent and child not in found:
                found[child] = start
                parents.append(child)
    return found


def _running(family: dict[int, int]) -> list[int]:
    """The pids of `family` still running: same start time, not a zombie."""
    table = _processes()
    return [
        pid
        for pid, start in family.items()
        if pid in table and table[pid][1] == start and table[pid][2] != b"Z"
    ]
