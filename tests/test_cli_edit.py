"""The headless ``p2p-widgets edit`` command on the embedded pocket model."""

import json

import pytest
from PIL import Image

from p2p_widgets import cli


def test_edit_writes_images_and_a_json_that_names_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(
        [
            "edit",
            "a big red circle on a gray background",
            "a big blue circle on a gray background",
            "--steps",
            "4",
            "--seed",
            "3",
            "--reweight",
            "blue=2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    for name in ("source.png", "edit.png", "baseline.png"):
        assert Image.open(out / name).size == (32, 32)
    spec = json.loads((out / "edit.json").read_text())
    assert spec["prompts"][1] == "a big blue circle on a gray background"
    assert spec["seed"] == 3 and spec["steps"] == 4 and spec["model"] == "pocket"
    assert spec["rules"][0]["rule"] == "Reweight" and spec["rules"][0]["values"] == {"blue": 2.0}
    assert "step 4/4" in capsys.readouterr().err  # the progress bar


def test_edit_names_a_missing_word_and_exits_2(tmp_path, capsys):
    code = cli.main(["edit", "a red cat", "a blue cat", "--steps", "2", "--blend", "dog", "--out", str(tmp_path)])
    assert code == 2
    assert "'dog'" in capsys.readouterr().err
    assert not (tmp_path / "edit.png").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--reweight", "big"], "WORD=VALUE"),
        (["--cross", "1.5"], "fraction in [0, 1]"),
    ],
)
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["edit", "a", "b", *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        cli.main(["edit", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_edit_of_a_real_image_writes_the_inversion_and_reruns(tmp_path, capsys):
    import numpy as np

    from p2p_widgets.engine.export import load_edit
    from p2p_widgets.engine.sampler import Editor
    from p2p_widgets.pocket.model import load_pocket
    from p2p_widgets.pocket.scenes import sample_scene

    scene = sample_scene(np.random.default_rng(3), p_two=0.0)
    Image.fromarray(scene.image).save(tmp_path / "drawing.png")
    target = scene.caption.replace(scene.objects[0].color, "green" if scene.objects[0].color != "green" else "pink", 1)
    out = tmp_path / "run"
    code = cli.main(
        [
            "edit",
            scene.caption,
            target,
            "--image",
            str(tmp_path / "drawing.png"),
            "--invert",
            "negative-prompt",
            "--steps",
            "4",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert names == {
        "input.png",
        "source.png",
        "edit.png",
        "baseline.png",
        "edit.json",
        "edit.inversion.json",
        "edit.inversion.safetensors",
    }
    spec = json.loads((out / "edit.json").read_text())
    assert spec["model"] == "pocket" and spec["inversion"]["method"] == "negative-prompt"
    again = load_edit(Editor(load_pocket()), out / "edit.json")
    assert np.array_equal(np.asarray(again.images[1]), np.asarray(Image.open(out / "edit.png")))

    code = cli.main(["edit", scene.caption, target, "--image", str(tmp_path / "missing.png"), "--out", str(out)])
    assert code == 2 and "missing.png" in capsys.readouterr().err


def test_help_suggests_no_reweight_the_readme_measures_as_never_working(capsys):
    with pytest.raises(SystemExit):
        cli.main(["edit", "--help"])
    text = capsys.readouterr().out
    assert "big=3" not in text  # README: a size reweight ("big" x3) reaches its target 0 % of the time
    assert "--reweight green=2" in text
    assert text.endswith("--blend circle\n")  # every example on its own lines, the last one too


class _Stream:
    def __init__(self, tty):
        self.tty, self.text = tty, ""

    def isatty(self):
        return self.tty

    def write(self, text):
        self.text += text

    def flush(self):
        pass


class _Event:
    def __init__(self, step):
        self.step, self.timestep = step, 999 - step


@pytest.mark.parametrize("tty", [False, True])
def test_progress_redraws_in_place_only_on_a_terminal(tty):
    stream = _Stream(tty)
    progress = cli._Progress(25, stream=stream)
    for step in range(25):
        progress(_Event(step))
    progress.close()
    if tty:
        assert stream.text.count("\r") == 25 and stream.text.endswith("step 25/25 (t=975)\n")
    else:  # a log: plain lines, a few of them, never a carriage return
        assert "\r" not in stream.text
        assert stream.text.splitlines() == [f"step {k}/25 (t={1000 - k})" for k in (5, 10, 15, 20, 25)]


def test_an_empty_target_is_refused(tmp_path, capsys):
    code = cli.main(["edit", "a red cat", "  ", "--steps", "2", "--out", str(tmp_path / "x")])
    assert code == 2 and "target prompt is empty" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_an_out_path_through_a_file_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    import p2p_widgets.models

    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(p2p_widgets.models, "load_pipeline", no_work)
    (tmp_path / "afile").write_text("x")
    code = cli.main(["edit", "a red cat", "a blue cat", "--steps", "2", "--out", str(tmp_path / "afile" / "sub")])
    err = capsys.readouterr().err
    assert code == 2 and "afile is a file" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_invert_offers_each_familys_methods_and_defaults_to_the_loaded_models(tmp_path, capsys):
    """``--invert`` offered the UNet methods only and defaulted to null-text, so ``--model pocket-flow
    --image X`` could not run: its choices and default now come from the engine's per-family lists."""
    import numpy as np

    from p2p_widgets.engine.inversion import FAMILY_METHODS

    with pytest.raises(SystemExit):
        cli.main(["edit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for methods in FAMILY_METHODS.values():
        assert all(m in text for m in methods)
    assert "(default: null-text)" in text and "(default: fireflow)" in text  # each family's, from FAMILY_DEFAULTS
    image = np.full((32, 32, 3), 120, np.uint8)
    image[8:24, 8:24] = (220, 40, 40)
    Image.fromarray(image).save(tmp_path / "square.png")
    source, target = "a big red square on a gray background", "a big blue square on a gray background"
    argv = ["edit", source, target, "--model", "pocket-flow", "--image", str(tmp_path / "square.png"), "--steps", "2"]
    assert cli.main([*argv, "--out", str(tmp_path / "a")]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "a" / "edit.json").read_text())["inversion"]["method"] == "fireflow"
    assert cli.main([*argv, "--invert", "rf-solver", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "edit.json").read_text())["inversion"]["method"] == "rf-solver"
    capsys.readouterr()
    assert cli.main([*argv, "--invert", "null-text", "--out", str(tmp_path / "c")]) == 2
    assert "got 'null-text' ('null-text' inverts UNet models)" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_a_checkpoint_samples_with_its_familys_defaults_not_sds(family, monkeypatch, tmp_path, capsys):
    """Any checkpoint got Stable Diffusion's 50 steps at 7.5; the loaded model's defaults now decide."""
    import p2p_widgets.models
    from p2p_widgets.bench.mmdit_geometries import tiny_flux_pipeline, tiny_sd3_pipeline
    from p2p_widgets.engine.defaults import FLUX_DEV_DEFAULTS, SD3_DEFAULTS
    from p2p_widgets.engine.sampler import Editor
    from p2p_widgets.errors import P2PError

    build = {"sd3": tiny_sd3_pipeline, "flux": lambda: tiny_flux_pipeline(0, guidance_embeds=True)}[family]
    monkeypatch.setattr(p2p_widgets.models, "load_pipeline", lambda model: build())
    seen = {}

    def edit(self, source, target, **options):
        seen.update(steps=options["steps"], guidance=options["guidance"])
        raise P2PError("stopped by the test")

    monkeypatch.setattr(Editor, "edit", edit)
    assert cli.main(["edit", "a red cat", "a blue cat", "--model", f"org/tiny-{family}", "--out", str(tmp_path)]) == 2
    want = {"sd3": SD3_DEFAULTS, "flux": FLUX_DEV_DEFAULTS}[family]
    assert seen == {"steps": want.steps, "guidance": want.guidance}
    assert cli.main(["edit", "a red cat", "a blue cat", "--model", "org/x", "--steps", "3", "--guidance", "2"]) == 2
    assert seen == {"steps": 3, "guidance": 2.0}


def test_the_built_in_model_names_are_kept_once():
    from p2p_widgets import models
    from p2p_widgets.engine.defaults import POCKET_DEFAULTS, POCKET_FLOW_DEFAULTS
    from p2p_widgets.errors import P2PError
    from p2p_widgets.evaluate import report, sweep
    from p2p_widgets.pocket import eval as pocket_eval

    assert models.BUILT_IN_MODELS == ("pocket", "pocket-flow")
    assert cli.BUILT_IN_MODELS is sweep.BUILT_IN_MODELS is report.BUILT_IN_MODELS is models.BUILT_IN_MODELS
    assert pocket_eval.BUILT_IN_MODELS is models.BUILT_IN_MODELS
    assert (
        models.defaults_for("pocket") is POCKET_DEFAULTS and models.defaults_for("pocket-flow") is POCKET_FLOW_DEFAULTS
    )
    with pytest.raises(P2PError, match="'org/sd3' is not a built-in model .*editor.model.defaults"):
        models.defaults_for("org/sd3")  # a checkpoint's defaults are its loaded backend's


def test_building_the_parser_loads_no_torch():
    import subprocess
    import sys

    code = "import sys; from p2p_widgets import cli; cli._build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
