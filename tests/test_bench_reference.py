"""``bench reference``: our MasaCtrl, Plug-and-Play and P2P against the authors' own code.

The authors' checkouts are never part of this repository: the plumbing is tested here without
them, and the comparison itself runs when ``P2P_MASACTRL`` / ``P2P_PNP`` / ``P2P_P2P`` point to
checkouts of TencentARC/MasaCtrl, MichalGeyer/pnp-diffusers and google/prompt-to-prompt.
"""

import copy
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from p2p_widgets.bench import reference
from p2p_widgets.errors import P2PError

CHECKOUT_VARIABLES = {"masactrl": "P2P_MASACTRL", "pnp": "P2P_PNP", "p2p": "P2P_P2P"}


def _fake_checkout(root, option):
    for name in reference.CHECKOUTS[option]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    return root


def test_help_names_the_three_checkouts_and_the_steps(capsys):
    with pytest.raises(SystemExit) as stop:
        reference.main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for text in ("--masactrl DIR", "--pnp DIR", "--p2p DIR", "--steps", "TencentARC/MasaCtrl"):
        assert text in out


def test_the_bench_command_reaches_reference():
    out = subprocess.run(
        [sys.executable, "-m", "p2p_widgets.bench", "reference", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "python -m p2p_widgets.bench reference" in out.stdout and "--pnp DIR" in out.stdout


def test_without_a_checkout_it_says_which_options_take_one(capsys):
    with pytest.raises(SystemExit) as stop:
        reference.main([])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--masactrl DIR" in err and "--pnp DIR" in err and "--p2p DIR" in err


@pytest.mark.parametrize("option", sorted(reference.CHECKOUTS))
def test_a_folder_that_is_not_the_checkout_is_refused_by_name(tmp_path, option, capsys):
    (tmp_path / "README.md").write_text("something else")
    with pytest.raises(P2PError, match=rf"--{option}: .* is not a checkout of {reference.REPOSITORIES[option]}"):
        reference.check_checkout(option, tmp_path)
    with pytest.raises(SystemExit) as stop:
        reference.main([f"--{option}", str(tmp_path)])
    assert stop.value.code == 2
    assert f"--{option}" in capsys.readouterr().err


def test_a_missing_folder_and_missing_files_are_named(tmp_path):
    with pytest.raises(P2PError, match=r"--pnp: .*nowhere.* is not a directory"):
        reference.check_checkout("pnp", tmp_path / "nowhere")
    (tmp_path / "pnp.py").write_text("")
    with pytest.raises(P2PError) as error:
        reference.check_checkout("pnp", tmp_path)
    assert "pnp_utils.py, preprocess.py" in str(error.value) and "no pnp.py" not in str(error.value)
    assert reference.check_checkout("p2p", _fake_checkout(tmp_path, "p2p")) == tmp_path


def test_steps_outside_the_range_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        reference.main(["--pnp", str(_fake_checkout(tmp_path, "pnp")), "--steps", "1"])
    assert stop.value.code == 2
    assert "--steps must be between 2 and 1000, got 1" in capsys.readouterr().err


def test_imports_from_a_checkout_leave_no_module_path_or_stand_in_behind(tmp_path):
    (tmp_path / "authors_module_for_test.py").write_text(
        "import cv2\nimport torchvision.utils\nfrom torchvision.transforms import ToTensor\nVALUE = 3\n"
    )
    missing = {name for name in ("cv2", "torchvision") if reference._missing(name)}
    changes = []
    with reference.authors_imports(tmp_path, changes):
        import authors_module_for_test

        assert authors_module_for_test.VALUE == 3
    assert "authors_module_for_test" not in sys.modules
    assert str(tmp_path.resolve()) not in sys.path
    assert not missing & set(sys.modules)
    if missing:  # the stand-ins are named in the printed changes
        assert all(name in changes[0] for name in missing)


def test_stand_ins_only_answer_imports_nothing_installed_answers(tmp_path):
    finder = reference._StandInFinder()
    assert finder.find_spec("numpy") is None and finder.find_spec("cv2") is not None
    with reference.authors_imports(tmp_path, []):
        assert isinstance(sys.meta_path[-1], reference._StandInFinder)  # after every real finder
        import numpy  # noqa: F401  (installed: the real one, never a stand-in)

        assert sys.modules["numpy"].__file__
    assert not any(isinstance(f, reference._StandInFinder) for f in sys.meta_path)


def test_patched_attributes_come_back_and_absent_ones_go_again():
    import types

    module = types.SimpleNamespace(kept=1)
    with reference._patched(module, kept=2, device="cpu"):
        assert (module.kept, module.device) == (2, "cpu")
    assert module.kept == 1 and not hasattr(module, "device")


def test_the_to_tensor_stand_in_does_torchvisions_arithmetic():
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    tensor = reference._to_tensor(Image.fromarray(pixels))
    assert tensor.shape == (3, 5, 7) and tensor.dtype == torch.float32
    assert torch.equal(tensor, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    with pytest.raises(P2PError, match="short side is 512"):
        reference._Resize(512)(Image.fromarray(pixels))


def test_notebook_cells_are_found_by_what_they_contain(tmp_path):
    notebook = tmp_path / "n.ipynb"
    cells = [
        {"cell_type": "markdown", "source": ["import ptp_utils in prose"]},
        {"cell_type": "code", "source": ["import torch\n", "import ptp_utils\n"]},
        {"cell_type": "code", "source": ["class AttentionControlEdit:\n", "    pass\n"]},
    ]
    notebook.write_text(json.dumps({"cells": cells}))
    imports, controllers = reference.notebook_cells(notebook, ("import ptp_utils", "class AttentionControlEdit"))
    assert imports == "import torch\nimport ptp_utils\n" and controllers.startswith("class AttentionControlEdit")
    with pytest.raises(P2PError, match="no code cell contains 'class LocalBlend'"):
        reference.notebook_cells(notebook, ("class LocalBlend",))
    notebook.write_text("not json")
    with pytest.raises(P2PError, match="not a readable notebook"):
        reference.notebook_cells(notebook, ("x",))


def test_the_old_offset_argument_is_the_configs_steps_offset(tiny_pipe):
    scheduler = reference.accept_offset(reference._ddim(tiny_pipe))
    scheduler.set_timesteps(10, offset=1)
    plain = reference._ddim(tiny_pipe)
    plain.set_timesteps(10)
    assert scheduler.timesteps.tolist() == plain.timesteps.tolist() == list(range(901, 0, -100))
    with pytest.raises(P2PError, match=r"offset=0\) but the scheduler's steps_offset is 1"):
        scheduler.set_timesteps(10, offset=0)


def test_old_attention_names_keep_the_unet_and_pass_the_old_arguments(tiny_pipe):
    from diffusers.models.attention_processor import Attention

    unet = reference.old_attention_names(copy.deepcopy(tiny_pipe.unet))
    attention = [m for m in unet.modules() if isinstance(m, Attention)]
    assert attention and all(type(m).__name__ == "CrossAttention" for m in attention)
    x, text = torch.randn(2, 4, 16, 16), torch.randn(2, 77, 32)
    with torch.no_grad():  # not yet replaced: the UNet computes what it did
        assert torch.equal(unet(x, 10, encoder_hidden_states=text).sample, tiny_pipe.unet(x, 10, text).sample)
    layer = attention[0]
    tokens = torch.randn(2, 5, layer.to_q.in_features)
    assert torch.equal(layer.reshape_heads_to_batch_dim(tokens), layer.head_to_batch_dim(tokens))
    seen = []
    layer.forward = lambda x, context=None, mask=None: seen.append((context, mask)) or x  # P2P's old signature
    assert layer(tokens, encoder_hidden_states=None, attention_mask=None) is tokens and seen == [(None, None)]


def test_the_reference_unet_has_sd_layers_at_64_32_and_16():
    """The authors' hard-coded choices need SD 1.x's layout at 512 px: 16 self-attention layers
    (MasaCtrl), 16x16 cross maps in down_blocks.2 / up_blocks.1 (P2P), up_blocks.1.resnets.1 (PnP)."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**reference.REFERENCE_UNET)
    queries = {}

    def record(name):
        def hook(module, args, kwargs):
            queries[name] = args[0].shape[1]

        return hook

    for name, module in unet.named_modules():
        if name.endswith("attn1"):
            module.register_forward_pre_hook(record(name), with_kwargs=True)
    with torch.no_grad():
        unet(torch.randn(1, 4, 64, 64), 500, encoder_hidden_states=torch.randn(1, 77, 64))
    assert len(queries) == 16
    sides = {name.split(".attentions")[0]: int(round(n**0.5)) for name, n in queries.items()}
    assert sides == {
        "down_blocks.0": 64,
        "down_blocks.1": 32,
        "down_blocks.2": 16,
        "mid_block": 8,
        "up_blocks.1": 16,
        "up_blocks.2": 32,
        "up_blocks.3": 64,
    }
    assert type(unet.up_blocks[0]).__name__ == "UpBlock2D" and len(unet.up_blocks[1].resnets) == 3


def test_the_table_says_pass_fail_and_why():
    rows = [
        reference.Row("MasaCtrl", difference=3e-6),
        reference.Row("P2P refine", difference=2e-3, note="a note"),
        reference.Row("Plug-and-Play", error="P2PError: boom", changes=["a change"]),
    ]
    text = reference.report(rows, 10, out=io.StringIO())
    lines = text.splitlines()
    assert [r.passed for r in rows] == [True, False, False]
    assert "pass" in next(x for x in lines if x.startswith("MasaCtrl")) and "3.000e-06" in text
    assert "FAIL" in next(x for x in lines if x.startswith("P2P refine"))
    assert "P2P refine: a note" in text and "Plug-and-Play: error: P2PError: boom" in text
    assert "  Plug-and-Play: a change" in text


def test_a_failing_side_is_reported_in_its_row():
    def broken():
        raise P2PError("their code needs a GPU")

    row = reference._measure(reference.Row("X"), broken, lambda: torch.zeros(1))
    assert row.error == "P2PError: their code needs a GPU" and not row.passed
    one = torch.ones(2, dtype=torch.float64)
    row = reference._measure(reference.Row("Y"), lambda: one, lambda: one + 5e-5)
    assert row.passed and row.difference == pytest.approx(5e-5, rel=1e-9)
    row = reference._measure(reference.Row("Z"), lambda: torch.ones(2), lambda: torch.ones(3))
    assert "differ in shape" in row.error


def test_the_recorder_keeps_the_latents_where_the_authors_decode():
    record = reference.Recorder(result="image")
    latents = torch.randn(2, 4, 8, 8)
    assert record("vae", latents) == "image" and torch.equal(record.latents, latents)


@pytest.fixture(scope="module")
def reference_pipe():
    return reference.build_reference_model()


def _needs(option):
    """Without the checkout the test is not run, and .ci/test.sh's summary says which and how to run it."""
    command = f"python -m p2p_widgets.bench reference --{option} DIR"
    variable, repository = CHECKOUT_VARIABLES[option], reference.REPOSITORIES[option]
    return pytest.param(option, marks=pytest.mark.needs_checkout(variable, repository, command))


@pytest.mark.parametrize("option", [_needs(option) for option in sorted(CHECKOUT_VARIABLES)])
def test_equal_to_the_authors_code(option, request):
    checkout = reference.check_checkout(option, os.environ[CHECKOUT_VARIABLES[option]])
    steps = reference.DEFAULT_STEPS
    rows = reference.compare({option: checkout}, steps=steps, pipe=request.getfixturevalue("reference_pipe"))
    text = reference.report(rows, steps, out=io.StringIO())
    assert rows and all(r.passed for r in rows), text
