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
