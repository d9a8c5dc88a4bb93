"""The watchdog of a local Ray cluster a sweep started: its processes go when the driver goes.

Ray ties the GCS, raylet and log monitor to the driver that started them (they die with it), but
not the raylet's own children: killed with SIGKILL or SIGTERM, the driver left the dashboard agent
and the runtime-env agent running (measured: still there 46 s later, with nothing to serve). The
driver therefore starts ``python -I .../ray_watchdog.py PID...`` (the
cluster's processes it started) in a session of its own, its stdin a pipe only the driver holds.
The watchdog follows that process tree (every new descendant joins it, so the agents and workers
are known before their parents die and they are handed to init), and when the pipe closes (the
driver closed it after ``ray.shutdown``, or died) it sends SIGTERM to every process of the tree still
running, then SIGKILL to those left after :data:`GRACE_S`. A process is known by its pid and its
start time, so a pid reused by another program is never signalled; nothing outside the tree is
(another cluster, one given by ``--address``, another user's). Linux only (it reads ``/proc``).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

POLL_S = 0.25
GRACE_S = 2.0


def available() -> bool:
    return sys.platform.startswith("linux") and os.path.isdir("/proc")


def _table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every live, not yet reaped process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
        if fields[0] not in ("Z", "X"):  # a zombie is gone, only not reaped yet
            table[int(name)] = (int(fields[1]), fields[19])
    return table


def follow(known: dict[int, str], table: dict[int, tuple[int, str]]) -> None:
    """Add to ``known`` (pid -> start time) every live descendant of its live processes."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    todo = [pid for pid, start in known.items() if table.get(pid, (0, None))[1] == start]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in known and child != os.getpid():
                known[child] = table[child][1]
                todo.append(child)


def alive(known: dict[int, str]) -> list[int]:
    table = _table()
    return [pid for pid, start in known.items() if table.get(pid, (0, None))[1] == start]


def stop(known: dict[int, str]) -> None:
    """SIGTERM, then after :data:`GRACE_S` SIGKILL, to every process of ``known`` still running."""
    follow(known, _table())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in alive(known):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + GRACE_S
        while alive(known) and time.monotonic() < deadline:
            time.sleep(0.05)


def watch(roots: list[int]) -> None:
    table = _table()
    known = {pid: table[pid][1] for pid in roots if pid in table}
    while True:
        follow(known, _table())
        readable, _, _ = select.select([sys.stdin.buffer], [], [], POLL_S)
        if readable and not os.read(sys.stdin.fileno(), 4096):  # EOF: the driver is done or gone
            break
    stop(known)


def start(pids: list[int]):
    """Start the watchdog of the processes ``pids`` (and their descendants); returns its Popen
    (close its stdin to let it stop what is left) or None where it cannot run."""
    import subprocess

    if not available() or not pids:
        return None
    return subprocess.Popen(
        [sys.executable, "-I", __file__, *map(str, pids)],  # the file alone: the package imports torch
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a signal to the driver's process group does not reach it
    )


if __name__ == "__main__":
    watch([int(a) for a in sys.argv[1:]])
