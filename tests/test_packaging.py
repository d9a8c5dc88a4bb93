"""Layer 1: what a wheel ships, and a cheap ``import p2p_widgets``."""

import email
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import p2p_widgets

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = out.glob("*.whl")
    with zipfile.ZipFile(path) as zf:
        yield {name: zf for name in zf.namelist()}, zf


def _read(wheel, suffix):
    names, zf = wheel
    (name,) = [n for n in names if n.endswith(suffix)]
    return zf.read(name).decode()


def test_wheel_ships_bundles_and_data(wheel):
    names, _ = wheel
    must = [
        "p2p_widgets/__init__.py",
        "p2p_widgets/cli.py",
        "p2p_widgets/widgets/ping.py",
        "p2p_widgets/static/ping.js",
        "p2p_widgets/static/ping.css",
    ]
    for folder in ("p2p_widgets/_clip", "p2p_widgets/pocket/weights"):
        must += [p.relative_to(ROOT).as_posix() for p in (ROOT / folder).glob("*") if p.is_file()]
    missing = [m for m in must if m not in names]
    assert not missing, f"wheel lacks {missing}"
    assert not [n for n in names if n.startswith(("tests/", "js/", "notebooks/"))]
    assert not [n for n in names if "__pycache__" in n]


def test_wheel_metadata(wheel):
    meta = email.message_from_string(_read(wheel, ".dist-info/METADATA"))
    assert meta["Name"] == "p2p_widgets"
    assert meta["Version"] == p2p_widgets.__version__
    assert meta["Requires-Python"] == ">=3.10"
    requires = meta.get_all("Requires-Dist")
    base = {r.split(";")[0].split(">")[0].split("=")[0].strip() for r in requires if "extra ==" not in r}
    assert {
        "jupyterlab",
        "ipywidgets",
        "anywidget",
        "torch",
        "diffusers",
        "transformers",
        "safetensors",
        "plotly",
        "pillow",
        "numpy",
    } <= base
    # torch itself (not torchmetrics and the like): users install the build their machine needs
    pinned = [r for r in requires if re.match(r"torch\s*[=<>~!]", r.split(";")[0])]
    assert not pinned, f"torch must not be pinned: {pinned}"
    assert {"test", "dev"} <= set(meta.get_all("Provides-Extra"))
    entry_points = _read(wheel, ".dist-info/entry_points.txt")
    assert "p2p-widgets = p2p_widgets.cli:main" in entry_points


def test_import_is_cheap():
    code = (
        "import sys, p2p_widgets, p2p_widgets.widgets, p2p_widgets.cli;"
        "heavy = {'torch', 'diffusers', 'transformers', 'anywidget', 'ipywidgets', 'plotly'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
