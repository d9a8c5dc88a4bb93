"""Layer 1: the committed front-end bundles in p2p_widgets/static.

Bundles are committed so that installing from a clone needs no Node. This test rebuilds them
into a temporary folder and requires byte-identical output: a stale bundle fails here.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "js"
STATIC = ROOT / "p2p_widgets" / "static"


def _bundles(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".js", ".css")}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def test_committed_bundles_match_a_fresh_build(tmp_path):
    node = shutil.which("node")
    if node is None or not (JS / "node_modules" / "esbuild").is_dir():
        message = "node or js/node_modules is missing: run `npm ci` in js/"
        if _in_ci():
            pytest.fail(f"CI must check the committed bundles, but {message}")
        pytest.skip(message)
    subprocess.run([node, "build.mjs", "--outdir", str(tmp_path)], cwd=JS, check=True, capture_output=True, timeout=120)
    built, committed = _bundles(tmp_path), _bundles(STATIC)
    assert built, "esbuild produced nothing"
    assert sorted(committed) == sorted(built), "p2p_widgets/static and js/src entries differ"
    stale = [name for name in built if built[name] != committed[name]]
    assert not stale, f"stale bundles {stale}: run `npm run build` in js/ and commit p2p_widgets/static"


def test_every_entry_has_a_bundle():
    entries = {p.stem for p in (JS / "src").glob("*.js")}
    built = {p.stem for p in STATIC.glob("*.js")}
    assert entries and entries == built


@pytest.mark.parametrize("bundle", sorted(p.name for p in STATIC.glob("*.js")))
def test_bundle_is_self_contained_and_small(bundle):
    text = (STATIC / bundle).read_text(encoding="utf-8")
    # bundled ESM: nothing left to import at runtime (no CDN, no relative files)
    assert not re.search(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["'`]""", text), "bundle still imports a module"
    assert "export default" in text or re.search(r"export\s*\{[^}]*as default", text)
    assert "sourceMappingURL" not in text, "committed bundles carry no source maps"
    assert not re.search(r"/(?:work|tmp|home|root|Users)/", text), "absolute path leaked into the bundle"
    assert len(text.encode()) < 100_000, "bundles travel with every widget instance: keep them small"
