"""Which process did something, and whether it is certainly gone.

MLflow runs, registered versions and Optuna trials record the machine and process that made
them, so that what a killed process left behind (SIGKILL, the out-of-memory killer) is ended by
the next command on the same machine, and what a live process is doing never is.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def read_text(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def this_machine() -> str:
    """Host name, boot and PID namespace: two machines with one name, a reboot, or a container
    with its own PIDs are different machines, whose process ids mean nothing here."""
    boot = read_text("/proc/sys/kernel/random/boot_id") or "boot"
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = "pids"
    return f"{socket.gethostname()}/{boot[:8]}/{namespace}"


def start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (None without /proc)."""
    stat = read_text(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after it are plain.
    return stat.rsplit(")", 1)[1].split()[19]


def identity(pid: int | None = None) -> str:
    """`pid:start` of this process (or `pid`): with the start time, a reused pid is not taken
    for the process that had it."""
    pid = os.getpid() if pid is None else pid
    start = start_ticks(pid)
    return f"{pid}:{start}" if start else str(pid)


def is_gone(recorded: str) -> bool:
    """True only when the process recorded as `pid:start` on this machine certainly no longer
    exists; a process this user may not see (another user's, under hidepid) counts as alive."""
    pid, _, start = recorded.partition(":")
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    current = start_ticks(int(pid))
    return bool(start) and current is not None and current != start


def left_by_dead_process(machine: str | None, process: str | None) -> bool:
    """Made on this machine by a process that certainly no longer exists."""
    return machine == this_machine() and is_gone(process or "")
