"""One Studio run at a time: the worker thread, Stop, and the panel's run state.

A run inverts the Studio's real image when it has one (cached by the engine), then samples the
edit streamed into the player. Errors go to the panel's banner (a thread has nowhere else to
report) and are kept for :meth:`RunController.wait`.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from ...engine.export import spec_to_json
from ...errors import P2PError, RunStopped
from ...stream.frames import encode_image

_log = logging.getLogger(__name__)


class RunController:
    """Starts, stops and waits for the runs of one Studio (``studio.panel``, ``studio.player``, ``studio.editor``)."""

    def __init__(self, studio):
        self.studio = studio
        self.result = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: threading.Event | None = None
        self._lock = threading.RLock()  # re-entered when a status observer starts or stops a run

    @property
    def running(self) -> bool:
        return (
            self._thread is not None and self._thread.is_alive() or self.studio.panel.status in ("running", "stopping")
        )

    def start(self, job: dict, background: bool, callback=None):
        """Run ``job`` (``spec`` and, for a real image, ``invert`` settings) in a worker thread or here."""
        panel = self.studio.panel
        with self._lock:
            if self.running:
                panel.report_error("a run is in progress: wait for it or press Stop")
                raise P2PError("a run is in progress")
            stop_event = threading.Event()
            self._stop_event, self.error = stop_event, None
            with panel.hold_sync():
                panel.clear_error()
                panel.status = "running"
                panel.progress = [0, panel.n_evals]  # UNet evaluations (Heun: 2n - 1)
            if background:
                self._thread = threading.Thread(
                    target=self._work, args=(job, stop_event, callback), name="p2p-studio-run", daemon=True
                )
                self._thread.start()
                return None
        self._work(job, stop_event, callback)
        if self.error is not None:
            raise self.error
        return self.result

    def stop(self) -> None:
        """Ask the current run to stop after its current step."""
        # under the lock the worker takes for its last status: a 'stopping' written just after the
        # run wrote 'done' would have no thread behind it, and the Studio would refuse Run for good
        with self._lock:
            if self._stop_event is not None and self.running:
                self._stop_event.set()
                if self.studio.panel.status == "running":
                    self.studio.panel.status = "stopping"

    def wait(self, timeout: float | None = None):
        """Wait for a background run; returns the EditResult (raises the run's error)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"the run did not finish within {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result

    # -- the work (in the worker thread when in the background) ------------------------------------
    def _work(self, job, stop_event, callback) -> None:
        studio, panel = self.studio, self.studio.panel

        def progress(event):
            if callback is not None:
                callback(event)
            if panel.phase != "sampling":  # after waiting for another run
                panel.phase = "sampling"
            panel.progress = [event.step + 1, event.n_evals]

        try:
            inversion = None
            if job.get("invert") is not None:
                inversion = self._invert(job["spec"].source, job["invert"], stop_event)
                if inversion is None:  # stopped while inverting: nothing to edit yet
                    with self._lock, panel.hold_sync():
                        panel.phase, panel.status = "", "stopped"
                    return
            panel.phase = "sampling"
            spec = job["spec"]
            if inversion is not None:
                spec = spec.replace(start="latents", inversion=inversion.describe())
            result = studio.player.run_spec(
                studio.editor,
                spec,
                inversion=inversion,
                callback=progress,
                stop_event=stop_event,
                baseline=job["baseline"],
                on_wait=self._waiting,
            )
            images = result_images(
                result, job["invert"]["image"] if inversion is not None else None, job.get("label", "P2P")
            )
            text = spec_to_json(result)
        except RunStopped:  # Stop pressed while the run waited for another one: nothing ran
            with self._lock, panel.hold_sync():
                panel.phase, panel.status = "", "stopped"
            return
        except BaseException as exc:  # shown in the widget; a thread has nowhere else to report
            self.error = exc
            _log.debug("Studio run failed", exc_info=True)
            with self._lock, panel.hold_sync():
                panel.report_error(f"run failed: {type(exc).__name__}: {exc}")
                panel.phase, panel.status = "", "error"
            return
        self.result = result
        with self._lock, panel.hold_sync():
            panel.phase = ""
            panel.images = images
            panel.spec_json = text
            panel.status = "stopped" if result.stopped else "done"

    def _waiting(self) -> None:
        """Called when another run (a notebook cell, another thread) holds the model: say so."""
        self.studio.panel.phase = "waiting for another run"

    def _invert(self, source: str, invert: dict, stop_event):
        """The inversion of the Studio's image with the source prompt (cached), or None if stopped."""
        panel = self.studio.panel

        def progress(event):  # both phases of null-text count: the DDIM pass, then the optimisation
            done = event.step + 1 + (invert["steps"] if event.phase == "null-text" else 0)
            panel.progress = [done, invert["steps"] * (2 if invert["method"] == "null-text" else 1)]

        panel.phase = f"inverting ({invert['method']})"
        try:
            inversion = self.studio.editor.invert(
                invert["image"],
                source,
                method=invert["method"],
                steps=invert["steps"],
                guidance=invert["guidance"],
                callback=progress,
                stop_event=stop_event,
                on_wait=self._waiting,
            )
        except P2PError:
            if stop_event.is_set():
                return None
            raise
        return None if inversion.stopped else inversion


def result_images(result, image=None, without: str = "P2P") -> list:
    """The panel's result tiles: [input,] source or reconstruction, edit[, baseline] as PNG;
    ``without`` names what the baseline leaves out (P2P, or the method run)."""
    first = "source" if image is None else "reconstruction"
    out = [] if image is None else [{"label": "input image", "name": "input.png", "png": encode_image(image)}]
    out += [
        {"label": first, "name": f"{first}.png", "png": _png(result.images[0])},
        {
            "label": "edit" + (" (stopped early)" if result.stopped else ""),
            "name": "edit.png",
            "png": _png(result.images[1]),
        },
    ]
    if result.baseline:
        out.append(
            {
                "label": f"without {without} (same seed)" if image is None else f"without {without} (same noise)",
                "name": "baseline.png",
                "png": _png(result.baseline[1]),
            }
        )
    return out


def _png(image) -> bytes:
    return encode_image(np.asarray(image.convert("RGB")))
