"""Edit files: an edit as JSON (an :class:`~p2p_widgets.engine.spec.EditSpec`) that reruns to the
same image, with the inversion beside it when the edit is of a real image.

>>> save_edit(result, "edit.json")               # an EditResult (its .spec); + inversion for real images
>>> again = load_edit(editor, "edit.json")        # reruns it
>>> torch.equal(again.latents, result.latents)    # True on the same device and dtype

``save_edit(result, "edit.json", inversion)`` writes the JSON and the inversion beside it
(``edit.inversion.json`` + ``.safetensors``; a name not ending in ``.json`` is kept whole:
``edit.a.inversion.json``); ``load_edit`` finds it there. Edits that started
from latents of your own cannot be exported. Everything read is validated: a malformed document
raises :class:`~p2p_widgets.errors.P2PError` naming the field.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import P2PError
from .inversion import Inversion, check_inversion
from .spec import EditSpec


def _spec_of(spec_or_result) -> EditSpec:
    spec = getattr(spec_or_result, "spec", spec_or_result)
    if isinstance(spec, dict):
        spec = EditSpec.from_dict(spec)
    if not isinstance(spec, EditSpec):
        raise P2PError(f"expected an EditResult, an EditSpec or a spec dict, got {type(spec_or_result).__name__}")
    return spec


def spec_to_json(spec_or_result, indent: int | None = 1) -> str:
    """The edit of an :class:`EditResult` (or an :class:`EditSpec`) as JSON text."""
    return _spec_of(spec_or_result).to_json(indent)


def spec_from_json(text: str | bytes) -> EditSpec:
    """Parse and validate exported JSON (any version this code reads)."""
    return EditSpec.from_json(text)


def edit_from_spec(editor, spec, inversion=None, **run_options):
    """Rerun an exported edit (an EditSpec, its dict or its JSON text) on ``editor``; ``inversion``
    for an edit of a real image; ``run_options`` go to :meth:`Editor.run` (``callback``, ``baseline``...)."""
    if isinstance(spec, (str, bytes, bytearray)):
        spec = EditSpec.from_json(spec)
    return editor.run(_spec_of(spec), inversion=inversion, **run_options)


def _inversion_prefix(path: Path) -> Path:
    """``edit.json`` -> ``edit.inversion``; any other name is kept whole (``edit.a`` ->
    ``edit.a.inversion``), so edits whose names share a stem keep their own inversions."""
    return path.with_name((path.stem if path.suffix == ".json" else path.name) + ".inversion")


def _old_inversion_prefix(path: Path) -> Path:
    """Where save_edit wrote the inversion before: from the stem, whatever the suffix."""
    return path.with_name(path.stem + ".inversion")


def _json(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".json")


def save_edit(result, path, inversion=None) -> list[Path]:
    """Write an edit's JSON to ``path``; an edit of a real image needs its ``inversion``, written
    beside it (``<stem>.inversion.json`` and ``.safetensors`` for a ``.json`` name, else
    ``<name>.inversion.*``). Returns the files written."""
    path = Path(path)
    spec = _spec_of(result)
    text = spec.to_json()  # refuses what cannot be rerun, before anything is written
    if spec.start != "seed":
        if inversion is None:
            raise P2PError("this edit started from an inverted image: pass its inversion to save it beside the JSON")
        check_inversion(spec.inversion, inversion)
    elif inversion is not None:
        raise P2PError("this edit started from a seed, not from an inversion")
    if path.is_dir():
        raise P2PError(f"{path} is a folder: give the edit's file name (e.g. {path / 'edit.json'})")
    path.parent.mkdir(parents=True, exist_ok=True)
    written = list(inversion.save(_inversion_prefix(path))) if inversion is not None else []
    path.write_text(text)
    return [path, *written]


def load_edit(editor, path, **run_options):
    """Rerun an edit written by :func:`save_edit` (with its inversion, when it has one)."""
    path = Path(path)
    if not path.is_file():
        raise P2PError(f"no edit file at {path}")
    spec = EditSpec.from_json(path.read_bytes())
    inversion = None
    if spec.start != "seed":
        prefix, old = _inversion_prefix(path), _old_inversion_prefix(path)
        if not _json(prefix).is_file() and _json(old).is_file():
            # written with the old naming; run() checks that it is the inversion the edit recorded
            prefix = old
        inversion = Inversion.load(prefix)
    return editor.run(spec, inversion=inversion, **run_options)
