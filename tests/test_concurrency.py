"""Runs from several threads on one pipeline: one run per UNet at a time, each result equal to its
single-threaded run, processors restored; the tokenizer used safely across threads.

Before the run lock, two threads editing on one pipeline corrupted each other's result (or one
raised a raw RuntimeError) and left P2P processors installed; the shared tokenizer failed about
one prompt in nine while another thread padded."""

import threading
import time

import pytest
import torch

from p2p_widgets.engine.prompts import Prompt
from p2p_widgets.errors import P2PError
from p2p_widgets.widgets.studio import Studio

EDIT = ("a big red cat", "a big blue dog", 2)


def slow(event):
    time.sleep(0.01)  # hand the interpreter to the other thread at every step


def _in_threads(*jobs):
    results, errors = [None] * len(jobs), []

    def work(k, job):
        try:
            results[k] = job()
        except Exception as exc:  # collected: a thread has nowhere else to report
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k, job)) for k, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results, errors


def test_two_threads_editing_one_pipeline_get_their_single_threaded_results(editor):
    processors = dict(editor.model.unet.attn_processors)
    # different mappers and windows, so a run that borrowed the other's processors would show it
    jobs = [
        dict(source="a red cat on a mat", targets="a red cat sitting on a mat", seed=1, cross=1.0, self_attn=1.0),
        dict(source="a big red cat", targets="a big blue dog", seed=2, cross=0.25, self_attn=0.0),
    ]
    alone = [editor.edit(**job, steps=4).latents for job in jobs]
    first_step = threading.Event()

    def first(event):
        first_step.set()
        slow(event)

    def second():
        first_step.wait(30)  # starts while the first run is inside the UNet loop
        return editor.edit(**jobs[1], steps=4, callback=slow)

    results, errors = _in_threads(lambda: editor.edit(**jobs[0], steps=4, callback=first), second)
    assert errors == []
    for result, expected in zip(results, alone, strict=True):
        assert torch.equal(result.latents, expected)
    assert dict(editor.model.unet.attn_processors) == processors


def test_a_caller_that_will_not_wait_gets_a_clear_error(editor):
    started, release = threading.Event(), threading.Event()

    def hold(event):
        started.set()
        release.wait(30)

    thread = threading.Thread(target=lambda: editor.edit("a red cat", "a red dog", steps=2, callback=hold))
    thread.start()
    try:
        assert started.wait(30)
        with pytest.raises(P2PError, match="another run is using this model"):
            editor.edit("a red cat", "a blue cat", steps=2, wait=False)
        with pytest.raises(P2PError, match="another run is using this model"):
            editor.invert(torch.zeros(64, 64, 3).numpy().astype("uint8"), "a red cat", "ddim", steps=2, wait=False)
    finally:
        release.set()
        thread.join(30)
    assert editor.edit("a red cat", "a blue cat", steps=2, wait=False).images  # free again


def test_the_studio_waits_for_a_notebook_cell_and_both_results_are_right(editor):
    studio = Studio(editor=editor, source="a red cat on a mat", target="a blue dog on a mat", steps=4)
    studio.player.send = studio.panel.send = lambda *a, **k: None
    alone_studio = studio.run(background=False).latents
    alone_cell = editor.edit(*EDIT[:2], steps=4, seed=EDIT[2]).latents

    started, release, phases = threading.Event(), threading.Event(), []
    studio.panel.observe(lambda change: phases.append(change["new"]), names=["phase"])

    def cell_step(event):
        started.set()
        release.wait(30)

    cell = {}
    thread = threading.Thread(
        target=lambda: cell.update(r=editor.edit(*EDIT[:2], steps=4, seed=EDIT[2], callback=cell_step))
    )
    thread.start()
    assert started.wait(30)
    studio.run()  # in the Studio's worker thread: it must wait for the cell
    deadline = time.time() + 30
    while "waiting for another run" not in phases and time.time() < deadline:
        time.sleep(0.01)
    assert "waiting for another run" in phases and studio.panel.status == "running"
    release.set()
    thread.join(60)
    assert torch.equal(studio.wait(60).latents, alone_studio)
    assert torch.equal(cell["r"].latents, alone_cell)
    assert studio.panel.status == "done" and studio.panel.phase == ""


def test_the_tokenizer_is_safe_across_threads(editor):
    texts = [
        f"a {c} {s} left of a small {c2} square on a gray background"
        for c in ("red", "blue", "green")
        for s in ("circle", "star")
        for c2 in ("white", "black", "orange")
    ]
    expected = {t: Prompt.from_text(t, editor.tokenizer).ids for t in texts}
    stop, failures = threading.Event(), []

    def pad_forever():
        while not stop.is_set():
            editor.model.encode([editor.prompt("a photo of a cat")] * 4)  # padded to 77 positions

    padder = threading.Thread(target=pad_forever)
    padder.start()
    try:
        for _ in range(10):
            for text in texts:
                try:
                    assert Prompt.from_text(text, editor.tokenizer).ids == expected[text]
                except (P2PError, AssertionError) as exc:
                    failures.append(repr(exc))
    finally:
        stop.set()
        padder.join(30)
    assert failures == []


def test_stop_ends_a_studio_run_that_waits_for_another(editor):
    studio = Studio(editor=editor, source="a red cat on a mat", target="a blue dog on a mat", steps=4)
    studio.player.send = studio.panel.send = lambda *a, **k: None
    started, release = threading.Event(), threading.Event()

    def hold(event):
        started.set()
        release.wait(30)

    cell = threading.Thread(target=lambda: editor.edit(*EDIT[:2], steps=4, callback=hold))
    cell.start()
    try:
        assert started.wait(30)
        studio.run()
        deadline = time.time() + 30
        while studio.panel.phase != "waiting for another run" and time.time() < deadline:
            time.sleep(0.01)
        studio.stop()
        studio.wait(30)  # returns although the other run still holds the model
        assert studio.panel.status == "stopped" and studio.panel.error == "" and cell.is_alive()
        # the player too: stopped, not failed (it said "error" with a RunStopped banner)
        assert (studio.player.status, studio.player.error) == ("stopped", "")
    finally:
        release.set()
        cell.join(30)
