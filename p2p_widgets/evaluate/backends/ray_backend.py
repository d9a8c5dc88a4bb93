"""The ``ray`` backend: one Ray actor per worker, each a :class:`SweepWorker` (the model loaded
once per actor), one row in flight per actor.

Ray is optional (``pip install p2p_widgets[ray]``) and imported only here. ``address`` names an
existing cluster (``host:port``, ``ray://host:port`` or ``auto``) and is checked before anything
runs; without it the sweep uses the Ray connection the process already has, or starts a local
cluster for the sweep and stops it afterwards (a watchdog, :mod:`.ray_watchdog`, stops it when the
driver is killed). An actor asks for ``threads`` CPUs (one by default) and, when the cluster has
GPUs and the device is not the CPU, one GPU. On a cluster of several machines the sweep folder
must be on storage every node sees (the inversion cache is shared through it; rows and images are
written by the driver). An actor that dies loses its row
and is replaced by a fresh one (at most ``workers`` times per sweep).
"""

from __future__ import annotations

import os
import socket
import subprocess

from ...errors import P2PError
from . import ray_watchdog
from .worker import SweepWorker, WorkerConfig

PROBE_TIMEOUT_S = 5.0
START_TIMEOUT_S = 900.0  # model loading included; longer means the cluster cannot place the actors


def import_ray():
    try:
        import ray
    except ImportError:
        raise P2PError("the ray backend needs Ray: pip install 'p2p_widgets[ray]' (or use backend 'local')") from None
    return ray


# Ray's GCS and its client server speak gRPC, i.e. HTTP/2 without TLS (unless RAY_USE_TLS): sent
# the HTTP/2 client preface and an empty SETTINGS frame, they answer with a SETTINGS frame. Something
# else listening there (a web server, a database) does not, and ray.init would retry for minutes.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
HTTP2_SETTINGS = 0x04


def probe_address(address: str) -> None:
    """A P2PError naming ``address`` unless a Ray cluster answers there: something must listen and
    answer as a gRPC server, within :data:`PROBE_TIMEOUT_S`. ``auto`` is resolved as Ray resolves it
    (``RAY_ADDRESS``, then a cluster started on this machine), and a P2PError says when none runs."""
    if not isinstance(address, str) or not address.strip():
        raise P2PError(f"the Ray address must be 'host:port', 'ray://host:port' or 'auto', got {address!r}")
    given = address
    if address == "auto":
        address = _resolve_auto()
        if address is None:  # this Ray cannot say; ray.init will
            return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise P2PError(f"the Ray address must be 'host:port', 'ray://host:port' or 'auto', got {address!r}")
    where = address if given == address else f"{address} (--address {given})"
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S) as sock:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
                return  # a TLS cluster answers only after a handshake this probe does not make
            sock.settimeout(PROBE_TIMEOUT_S)
            sock.sendall(HTTP2_PREFACE)
            reply = _read(sock, 9)
    except OSError as exc:
        raise P2PError(f"cannot reach the Ray cluster at {where}: {exc}") from None
    if len(reply) < 9 or reply[3] != HTTP2_SETTINGS:
        seen = f"it answered {reply[:24]!r}" if reply else f"no answer within {PROBE_TIMEOUT_S:g} s"
        raise P2PError(
            f"something listens at {where} but it does not answer as a Ray cluster ({seen}): give the "
            "address of a Ray head (its GCS port, 6379 by default, or ray://host:10001 for Ray Client)"
        )


def _read(sock, n: int) -> bytes:
    data = b""
    try:
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    return data


def _resolve_auto() -> str | None:
    """The address ``auto`` means, as Ray finds it; a P2PError when no cluster runs; None when this
    Ray version offers no way to ask."""
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:
        return None
    try:
        return canonicalize_bootstrap_address("auto")
    except (ConnectionError, ValueError) as exc:
        raise P2PError(
            f"--address auto: no running Ray cluster found ({exc}); start one (ray start --head) or leave "
            "the address out, and the sweep starts a local cluster of its own"
        ) from None


START_TRIES = 3


def start_local_cluster(ray, **options) -> None:
    """``ray.init(**options)`` for a local cluster, tried up to :data:`START_TRIES` times: on a busy
    machine the raylet gives up when its agent process takes over 15 s to start (not configurable;
    seen on 2 cores with a load average of 5-8), and a later try, with the agent's modules now in
    the page cache, starts."""
    for attempt in range(START_TRIES):
        try:
            ray.init(**options)
            return
        except Exception:  # Ray raises a plain Exception when the node does not come up
            ray.shutdown()
            if attempt == START_TRIES - 1:
                raise


def connect(ray, address: str | None) -> bool:
    """Connect to Ray; True when this call started a local cluster (the sweep stops it)."""
    if ray.is_initialized():
        if address not in (None, "auto"):
            current = ray.get_runtime_context().gcs_address
            if current.split("://")[-1] != address.split("://")[-1]:
                raise P2PError(f"this process is already connected to the Ray cluster at {current}, not {address}")
        return False
    if address is not None:
        probe_address(address)
    try:
        if address is None:
            start_local_cluster(ray)
        else:
            ray.init(address=address)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError or ValueError here
        ray.shutdown()  # whatever the failed start left running
        where = f"at {address}" if address else "(a local one)"
        raise P2PError(f"cannot connect to the Ray cluster {where}: {exc}") from None
    return address is None


class RayPool:
    """Ray actors (see the module docstring); the pool protocol of
    :func:`~p2p_widgets.evaluate.backends.drive`."""

    def __init__(self, config: WorkerConfig, workers: int, address: str | None):
        self.ray = import_ray()
        self.config, self.workers, self.address = config, workers, address
        self.started_cluster = False
        self.in_flight: dict = {}  # object ref -> (actor, job)
        self.actors: list = []
        self.restarts_left = workers
        self.watchdog = None

    def start(self) -> None:
        ray = self.ray
        self.started_cluster = connect(ray, self.address)
        if self.started_cluster:  # never a cluster given by address or connected before
            self.watchdog = ray_watchdog.start(cluster_pids(ray))
        self.options = {"num_cpus": self.config.threads or 1, "max_restarts": 0}
        gpus = ray.cluster_resources().get("GPU", 0)
        if (self.config.device or "cuda").startswith("cuda") and gpus > 0:
            # one GPU per actor, or an equal share when there are more workers than GPUs
            self.options["num_gpus"] = 1 if gpus >= self.workers else int(100 * gpus / self.workers) / 100
        self.actor_class = ray.remote(**self.options)(SweepWorker)
        self.config_ref = ray.put(self.config)  # the cases travel once, not once per actor
        actors = [self.actor_class.remote(self.config_ref) for _ in range(self.workers)]
        self._await_ready(actors)
        self.actors = actors

    def _await_ready(self, actors) -> None:
        ray = self.ray
        try:
            ray.get([a.ready.remote() for a in actors], timeout=START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            message = (
                f"the Ray workers did not start within {START_TIMEOUT_S:.0f} s: can the cluster place "
                f"{len(actors)} actors of {self.options} (its resources: {ray.cluster_resources()})?"
            )
        except Exception as exc:
            message = f"a Ray sweep worker could not start: {exc}"
        else:
            return
        for actor in actors:
            ray.kill(actor)
        raise P2PError(message)

    def slots(self):
        return list(self.actors)

    def submit(self, actor, job) -> None:
        self.in_flight[actor.run.remote(job)] = (actor, job)

    def wait(self):
        ray = self.ray
        refs = list(self.in_flight)
        ready, _ = ray.wait(refs, num_returns=1)
        more, _ = ray.wait(refs, num_returns=len(refs), timeout=0)  # everything else already finished
        done = []
        for ref in dict.fromkeys([*ready, *more]):
            actor, job = self.in_flight.pop(ref)
            try:
                done.append((actor, job, ("ok", ray.get(ref))))
            except ray.exceptions.RayError as exc:  # the actor died (killed, out of memory, crashed)
                done.append((actor, job, ("lost", f"the Ray worker died: {type(exc).__name__}: {exc}")))
        return done

    def retire(self, actor) -> None:
        if actor in self.actors:
            self.actors.remove(actor)
        self.ray.kill(actor)

    def replace(self, actor):
        self.retire(actor)
        if self.restarts_left <= 0:
            return None
        self.restarts_left -= 1
        fresh = self.actor_class.remote(self.config_ref)
        self._await_ready([fresh])
        self.actors.append(fresh)
        return fresh

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self.started_cluster:
            self.ray.shutdown()
        if self.watchdog is not None:  # it stops what the shutdown left (nothing, normally), then exits
            self.watchdog.stdin.close()
            try:
                self.watchdog.wait(timeout=2 * ray_watchdog.GRACE_S + 5)
            except subprocess.TimeoutExpired:  # it goes on alone
                pass
            self.watchdog = None


def cluster_pids(ray) -> list[int]:
    """The pids of the processes this driver started for its local cluster (GCS, raylet, log
    monitor...); the watchdog follows their children (agents, workers)."""
    try:
        node = ray._private.worker._global_node
        return [process.pid for _, process in node.live_processes()]
    except Exception:  # another Ray version's internals: no watchdog rather than a failed sweep
        return []
