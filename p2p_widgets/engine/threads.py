"""How many CPU threads torch samples with.

torch's default (one thread per core) collapses when another process wants a core: on a 2-core
machine with one core busy, a pocket edit went from ~5 s with one thread to 35-50 s with two
(``python -m p2p_widgets.bench threads`` measures it side by side). Sampling on the CPU therefore
uses half the cores (at least one) unless the user chose: ``OMP_NUM_THREADS`` (or
``P2P_WIDGETS_THREADS``) in the environment wins, and ``torch.set_num_threads`` after the first
Editor is created is never overridden (the choice is made once per process).
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_chosen: int | None = None


def default_cpu_threads() -> int:
    """Half the CPUs this process may use, at least one (one on a 2-core machine)."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        available = os.cpu_count() or 1
    return max(1, available // 2)


def choose_cpu_threads() -> int:
    """Set torch's intra-op threads once per process (see the module docstring); returns the count."""
    global _chosen
    import torch

    with _lock:
        if _chosen is None:
            wanted = os.environ.get("P2P_WIDGETS_THREADS") or os.environ.get("OMP_NUM_THREADS")
            _chosen = int(wanted) if wanted and wanted.isdigit() and int(wanted) > 0 else default_cpu_threads()
            torch.set_num_threads(_chosen)
        return _chosen
