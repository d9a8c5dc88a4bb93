"""The ``local`` backend with several workers: spawned processes, one model each, rows over pipes.

A worker process loads the model once (:class:`SweepWorker`), then answers one row per message.
A process that dies (killed, out of memory, a crash in native code) closes its pipe: its row is
reported lost and a new process takes its place (at most ``workers`` replacements per sweep).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback
from multiprocessing.connection import wait as wait_for

from ...errors import P2PError
from .worker import SweepWorker, WorkerConfig


def exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """End this process soon after ``parent_pid`` is gone. A parent killed outright sends nothing
    and its pipe is only seen closed after the row in flight (minutes for a null-text inversion):
    without this, workers go on computing rows nobody will read."""

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _serve(conn, config: WorkerConfig, parent_pid: int) -> None:
    """A worker process: load, say ready (or why not), then run rows until the pipe closes."""
    # Ctrl-C in a terminal reaches the whole process group: the sweep (the parent) stops and closes
    # the pool; a worker printing its own KeyboardInterrupt traceback would only bury its message
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent_pid)
    try:
        worker = SweepWorker(config)
    except Exception as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))
        return
    conn.send(("ready", worker.ready()))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        conn.send(("ok", worker.run(job)))


class _Slot:
    def __init__(self, process, conn):
        self.process, self.conn, self.job = process, conn, None


class ProcessPool:
    """``workers`` spawned processes (see the module docstring); the pool protocol of
    :func:`~p2p_widgets.evaluate.backends.drive`."""

    def __init__(self, config: WorkerConfig, workers: int):
        self.config, self.workers = config, workers
        self.context = multiprocessing.get_context("spawn")  # no fork: torch's threads do not survive it
        self._slots: list[_Slot] = []
        self.restarts_left = workers

    def _spawn(self) -> _Slot:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(child, self.config, os.getpid()), daemon=True)
        process.start()
        child.close()
        slot = _Slot(process, parent)
        self._slots.append(slot)
        return slot

    def _await_ready(self, slot: _Slot) -> None:
        try:
            kind, value = slot.conn.recv()
        except EOFError:
            code = slot.process.exitcode
            raise P2PError(f"a local sweep worker exited while loading the model (exit code {code})") from None
        if kind != "ready":
            raise P2PError(f"a local sweep worker could not start: {value}")

    def start(self) -> None:
        slots = [self._spawn() for _ in range(self.workers)]
        for slot in slots:
            self._await_ready(slot)

    def slots(self):
        return list(self._slots)

    def submit(self, slot: _Slot, job) -> None:
        slot.job = job
        try:
            slot.conn.send(job)
        except OSError:  # the process died while idle: wait() reads its closed pipe and reports the row lost
            pass

    def wait(self):
        busy = [s for s in self._slots if s.job is not None]
        ready = wait_for([s.conn for s in busy])
        done = []
        for slot in busy:
            if slot.conn not in ready:
                continue
            job, slot.job = slot.job, None
            try:
                kind, value = slot.conn.recv()
            except (EOFError, OSError):
                slot.process.join(timeout=5)
                kind, value = "lost", f"the worker process died (exit code {slot.process.exitcode})"
            done.append((slot, job, (kind, value)))
        return done

    def retire(self, slot: _Slot) -> None:
        self._drop(slot)

    def replace(self, slot: _Slot):
        self._drop(slot)
        if self.restarts_left <= 0:
            return None
        self.restarts_left -= 1
        fresh = self._spawn()
        self._await_ready(fresh)
        return fresh

    def _drop(self, slot: _Slot) -> None:
        if slot in self._slots:
            self._slots.remove(slot)
        slot.conn.close()
        if slot.process.is_alive():
            slot.process.kill()
        slot.process.join(timeout=5)

    def close(self) -> None:
        for slot in list(self._slots):
            try:
                slot.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            slot.process.join(timeout=10)
            self._drop(slot)
