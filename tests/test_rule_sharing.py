"""Issue 23, concurrency: a rule object shared by runs on two pipelines in two threads gives each
run its single-threaded result (the run binds and prepares its own copy, so the rule you hold keeps
no per-run state); one AttentionStore given to two concurrent edits is refused for the second.

Before: MaskedMutualSelfAttention kept the words' positions of whichever run bound it last, and a
second edit passed the store's "holds a run" check while the first had not written to it yet."""

import threading
import time

import numpy as np
import pytest
import torch

from p2p_widgets.bench.geometries import tiny_pipeline
from p2p_widgets.engine import controls
from p2p_widgets.engine.mapper import align
from p2p_widgets.engine.rules import Combine, Refine, Replace, Reweight
from p2p_widgets.engine.sampler import Editor
from p2p_widgets.engine.schedule import AlphaSchedule
from p2p_widgets.engine.store import AttentionStore
from p2p_widgets.errors import P2PError

STEPS = 4
PAIR = ("a red cat on a mat", "a blue cat on a mat")
# two prompt pairs whose words sit at different positions: a rule bound to one and run on the
# other (word masks) reads the wrong tokens
PAIRS = [
    ("a red cat on a mat", "a red dog on a mat"),
    ("on a green mat sits one small cat", "on a green mat sits one small dog"),
]
IMAGE = (np.arange(32 * 32 * 3) % 251).astype(np.uint8).reshape(32, 32, 3)


@pytest.fixture(scope="module")
def editors():
    return Editor(tiny_pipeline(seed=0)), Editor(tiny_pipeline(seed=0))


def _p2p(editor, cls):
    source, target = editor.prompt(PAIR[0]), editor.prompt(PAIR[1])
    return cls(align(source, target, editor.tokenizer), AlphaSchedule.build(STEPS, cross=1.0, self_attn=0.5))


def _masa(**extra):
    return dict(start_step=0, start_layer=0, **extra)


# name -> (the shared rule, built from the first editor; the prompt pairs; needs an inversion)
def _cases(editor):
    return {
        "Replace": (_p2p(editor, Replace), [PAIR, PAIR], False),
        "Refine": (_p2p(editor, Refine), [PAIR, PAIR], False),
        "Reweight": (Reweight(_p2p(editor, Replace), {"blue": 3.0}), [PAIR, PAIR], False),
        "Combine": (
            Combine(_p2p(editor, Replace), controls.MaskedMutualSelfAttention(**_masa(source_words=["cat"]))),
            [PAIR, PAIR],
            False,
        ),
        "MutualSelfAttention": (controls.MutualSelfAttention(**_masa()), PAIRS, False),
        "MaskedMutualSelfAttention": (
            controls.MaskedMutualSelfAttention(**_masa(source_words=["cat"], target_words=["dog"])),
            PAIRS,
            False,
        ),
        "PlugAndPlay": (controls.PlugAndPlay(), PAIRS, True),
        "StyleAligned": (controls.StyleAligned(), PAIRS, False),
    }


CASES = [
    "Replace",
    "Refine",
    "Reweight",
    "Combine",
    "MutualSelfAttention",
    "MaskedMutualSelfAttention",
    "PlugAndPlay",
    "StyleAligned",
]


def _edit(editor, rule, pair, seed, invert, callback=None):
    options = dict(steps=STEPS, seed=seed, guidance=3.0, rules=[rule], callback=callback)
    if invert:
        options["inversion"] = editor.invert(IMAGE, pair[0], "ddim", steps=STEPS, guidance=1.0, cache=False)
    return editor.edit(pair[0], pair[1], **options).latents


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


def _slow(event):
    time.sleep(0.005)  # hand the interpreter to the other thread at every step


@pytest.mark.parametrize("name", CASES)
def test_a_rule_shared_by_two_pipelines_in_two_threads_gives_single_threaded_results(editors, name):
    rule, pairs, invert = _cases(editors[0])[name]
    held = dict(vars(rule))
    alone = [_edit(e, rule, pair, seed, invert) for e, pair, seed in zip(editors, pairs, (1, 2))]
    assert not torch.equal(alone[0], alone[1])  # the two runs differ, so a mix-up would show
    for _ in range(2):
        jobs = [
            lambda e=e, pair=pair, seed=seed: _edit(e, rule, pair, seed, invert, callback=_slow)
            for e, pair, seed in zip(editors, pairs, (1, 2))
        ]
        results, errors = _in_threads(*jobs)
        assert not errors, errors
        for got, want in zip(results, alone):
            assert torch.equal(got, want), (got - want).abs().max()
    # the object the user holds kept no per-run state: the same attributes, the same values
    assert vars(rule).keys() == held.keys() and all(vars(rule)[k] is v for k, v in held.items())


def test_one_store_given_to_two_concurrent_edits_is_refused_for_the_second(editors):
    """The first edit takes the store and waits for its UNet (busy with a third run); the second,
    on the other pipeline, found the store still empty and ran into it before the claim."""
    store = AttentionStore()
    busy, waiting, release = threading.Event(), threading.Event(), threading.Event()

    def hold_the_unet(event):
        busy.set()
        release.wait(30)

    def blocker():
        return editors[0].edit(*PAIR, steps=STEPS, callback=hold_the_unet)

    def first():
        busy.wait(30)
        return editors[0].edit(*PAIR, steps=STEPS, store=store, on_wait=lambda *a: waiting.set())

    def second():
        waiting.wait(30)
        try:
            return editors[1].edit(*PAIR, steps=STEPS, store=store)
        finally:
            release.set()

    results, errors = _in_threads(blocker, first, second)
    assert waiting.is_set()  # the first edit did wait for the UNet, holding its claim
    assert len(errors) == 1 and isinstance(errors[0], P2PError), errors
    assert "already holds a run" in str(errors[0])
    assert results[1] is not None and store.n_steps == STEPS  # the first run had the store to itself
    with pytest.raises(P2PError, match="already holds a run"):
        editors[0].edit(*PAIR, steps=STEPS, store=store)  # and a finished run's store is still refused


def test_your_code_calling_the_pipelines_tokenizer_never_races_the_package(editors):
    """The package encoded with the pipeline's own tokenizer: a thread of user code padding with
    it at the same time broke about one prompt in ten (ids that did not add up word by word)."""
    from p2p_widgets.engine.prompts import Prompt

    tokenizer = editors[0].tokenizer
    text = "a big red circle left of a small blue square"
    want = Prompt.from_text(text, tokenizer)
    stop, calls = threading.Event(), [0]

    def user_code():
        while not stop.is_set():
            tokenizer(["a photo of a cat"] * 4, padding="max_length", max_length=77, truncation=True)
            calls[0] += 1

    thread = threading.Thread(target=user_code)
    thread.start()
    got, failed, started = 0, [], time.monotonic()
    try:
        while time.monotonic() - started < 2.0:
            try:
                prompt = Prompt.from_text(text, tokenizer)
                got += prompt == want
            except Exception as exc:  # counted: the test reports how many broke and how
                failed.append(exc)
    finally:
        stop.set()
        thread.join(10)
    assert calls[0] > 100 and not failed, (len(failed), failed[:1])
    assert got > 100
    # the user's own calls still see their own settings
    assert len(tokenizer("a cat", padding="max_length", max_length=77).input_ids) == 77


@pytest.mark.parametrize("pad", ["<|endoftext|>", "!"], ids=["SD", "SDXL second"])
def test_the_package_copy_of_a_tokenizer_tokenizes_and_decodes_as_the_original(pad):
    """A deep copy of transformers' CLIPTokenizer lost its decode wrapper ('red</w>' for 'red')."""
    from p2p_widgets.engine.tokenizer import load_tokenizer, private_copy

    original = load_tokenizer(pad)
    own = private_copy(original)
    assert own is not original and private_copy(original) is own  # one copy per tokenizer object
    for text in ("a big red circle left of a small blue square", "an orange cat, 3 dogs and a tabby"):
        ids = original(text).input_ids
        assert own(text).input_ids == ids
        assert [own.decode([i]) for i in ids] == [original.decode([i]) for i in ids]
