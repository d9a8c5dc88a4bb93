"""Command line: ``p2p-widgets demo | edit | eval | evaluate`` (and ``--version``).

Subcommands register in ``_build_parser``; each sets ``func`` to a callable taking the parsed
arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from . import __version__
from .cli_types import count_arg, port_arg, seed_arg, steps_arg
from .engine.defaults import FLUX_DEV_DEFAULTS, SD3_DEFAULTS, SD_DEFAULTS
from .engine.inversion_methods import FAMILY_DEFAULTS, FAMILY_METHODS, FAMILY_WORDS, methods_of
from .models import BUILT_IN, BUILT_IN_MODELS

DEMO_NOTEBOOK = "01_quickstart.ipynb"


def _find_notebooks(explicit: str | None) -> Path:
    """The notebooks folder: --notebooks, else ./notebooks, else the one beside the package (a clone)."""
    candidates = (
        [Path(explicit)]
        if explicit
        else [Path.cwd() / "notebooks", Path(__file__).resolve().parent.parent / "notebooks"]
    )
    for folder in candidates:
        if (folder / DEMO_NOTEBOOK).is_file():
            return folder.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise SystemExit(f"p2p-widgets demo: {DEMO_NOTEBOOK} not found (looked in {tried}); pass --notebooks DIR")


WORKDIR_ENV = "P2P_WIDGETS_WORKDIR"


def default_workdir() -> Path:
    """Where the demo keeps its working copies of the notebooks: $P2P_WIDGETS_WORKDIR, else
    ~/p2p-widgets-notebooks (outside any clone: JupyterLab saves outputs into what it opens)."""
    return Path(os.environ.get(WORKDIR_ENV) or Path.home() / "p2p-widgets-notebooks").expanduser()


def working_copies(originals: Path, workdir: Path) -> list[str]:
    """Copy each notebook of ``originals`` that ``workdir`` lacks (a copy already there is the
    user's work and stays as it is); returns the names copied."""
    workdir.mkdir(parents=True, exist_ok=True)
    copied = []
    for source in sorted(originals.glob("*.ipynb")):
        if not (workdir / source.name).exists():
            shutil.copyfile(source, workdir / source.name)
            copied.append(source.name)
    return copied


def _ip_problem(ip: str) -> str | None:
    if not ip.strip() or ip != ip.strip():
        return (
            f"--ip {ip!r}: give an address or host name to listen on (127.0.0.1: this machine only; "
            "0.0.0.0: every interface)"
        )
    return None


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def demo_folder(args: argparse.Namespace) -> tuple[Path, Path]:
    """(the folder JupyterLab opens, the folder of the original notebooks): the working copies'
    folder (``--workdir``), or the originals themselves with ``--in-place``."""
    originals = _find_notebooks(args.notebooks)
    if args.in_place:
        return originals, originals
    workdir = Path(args.workdir).expanduser() if args.workdir else default_workdir()
    return workdir.resolve(), originals


def demo_command(args: argparse.Namespace, folder: Path | None = None) -> tuple[list[str], Path]:
    """The JupyterLab command line the demo runs (also what --dry-run prints) and its working
    folder (the notebook argument is resolved against it)."""
    folder = demo_folder(args)[0] if folder is None else folder
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        DEMO_NOTEBOOK,
        f"--ServerApp.root_dir={folder}",
        f"--ServerApp.ip={args.ip}",
        f"--ServerApp.port={args.port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={args.token}",
    ]
    if args.no_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers often run as root
    return cmd, folder


def _demo(args: argparse.Namespace) -> int:
    problem = _ip_problem(args.ip)
    if problem:
        print(f"p2p-widgets demo: {problem}", file=sys.stderr)
        return 2
    try:
        free = _free_port(args.ip)  # also: an address this machine can listen on, port given or not
    except OSError as exc:  # an unknown host name (socket.gaierror) or an address not of this machine
        print(f"p2p-widgets demo: --ip {args.ip}: cannot listen there ({exc.strerror or exc})", file=sys.stderr)
        return 2
    args.port = args.port or free
    args.token = secrets.token_hex(16)
    folder, originals = demo_folder(args)
    cmd, folder = demo_command(args, folder)
    host = f"[{args.ip}]" if ":" in args.ip else args.ip  # an IPv6 address in a URL
    url = f"http://{host}:{args.port}/lab/tree/{DEMO_NOTEBOOK}?token={args.token}"
    if args.dry_run:
        print(" ".join(cmd))
        print(url)
        return 0
    if folder != originals:
        try:
            copied = working_copies(originals, folder)
        except OSError as exc:
            print(f"p2p-widgets demo: --workdir {folder}: cannot copy the notebooks there ({exc})", file=sys.stderr)
            return 2
    print(f"Starting JupyterLab; open {url}", flush=True)
    if folder != originals:
        kept = "" if len(copied) == len(list(originals.glob("*.ipynb"))) else " (copies already there are kept)"
        print(
            f"The notebooks open as working copies in {folder}{kept}; the originals in {originals} stay "
            "untouched. Delete a copy to get it afresh; --in-place opens the originals.",
            flush=True,
        )
    if os.name == "posix":
        # become JupyterLab, so that signals sent to this process reach the server itself
        os.chdir(folder)
        os.execv(cmd[0], cmd)
    try:
        return subprocess.call(cmd, cwd=folder)
    except KeyboardInterrupt:
        return 130


EDIT_EXAMPLES = """examples:
  p2p-widgets edit "a big red circle on a gray background" "a big blue circle on a gray background"
  p2p-widgets edit "a small red star left of a big blue square on a beige background" \\
      "a small red star left of a big green square on a beige background" --blend square --seed 3
  p2p-widgets edit "a big red circle on a gray background" "a big green circle on a gray background" \\
      --reweight green=2 --out out/greener
  p2p-widgets edit "a photo of a cat" "a photo of a dog" --model ./my-sd15-folder --steps 50
  p2p-widgets edit "a big red circle on a gray background" "a big green circle on a gray background" \\
      --image my_drawing.png --self 1 --blend circle
"""


def _reweight_pair(text: str):
    word, sep, value = text.partition("=")
    try:
        if not sep or not word:
            raise ValueError
        return word, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--reweight takes WORD=VALUE (e.g. big=2.5), got {text!r}") from None


def _edit_input_problem(args: argparse.Namespace, out: Path) -> str | None:
    """What is wrong with ``edit``'s prompts or ``--out`` (``out``), or None."""
    for name in ("source", "target"):
        if not getattr(args, name).strip():
            return f"the {name} prompt is empty: give the words of the image"
    return _out_folder_problem(out)


MODEL_HELP = (
    f"{' or '.join(map(repr, BUILT_IN_MODELS))} (built in, offline; default: %(default)s), "
    "or a checkpoint folder / hub id"
)
# the sampling defaults --steps / --guidance fall back on: the loaded model's (editor.model.defaults)
_KNOWN_DEFAULTS = {**BUILT_IN, "SD": SD_DEFAULTS, "SD3": SD3_DEFAULTS, "Flux dev": FLUX_DEV_DEFAULTS}
INVERT_METHODS = tuple(m for family in FAMILY_METHODS for m in methods_of(family))  # --invert's choices
INVERT_HELP = "how --image is inverted, by the model's family: " + "; ".join(
    f"{FAMILY_WORDS[family]} models {', '.join(methods_of(family))} (default: {FAMILY_DEFAULTS[family]})"
    for family in FAMILY_METHODS
)


def _defaults_help(what: str) -> str:
    return ", ".join(f"{name}: {getattr(d, what):g}" for name, d in _KNOWN_DEFAULTS.items())


def _model_problem(model: str) -> str | None:
    """What is wrong with ``--model`` that needs no loading, or None: a path (./x, /x, ~/x, or
    anything that exists on disk) must be a pipeline folder; anything else is a hub id, for the hub."""
    if model in BUILT_IN_MODELS:
        return None
    if not model.strip():
        return f"--model is empty: give {' or '.join(BUILT_IN_MODELS)}, a checkpoint folder or a hub id"
    path = Path(model).expanduser()
    looks_like_path = model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1
    if not path.exists():
        return f"--model {model}: no such folder" if looks_like_path else None
    if not path.is_dir():
        return f"--model {model} is a file; give the checkpoint's folder (the one holding model_index.json)"
    if not (path / "model_index.json").is_file():
        return f"--model {model}: no model_index.json in that folder, so it is not a diffusers pipeline folder"
    return None


def _out_folder_problem(out: Path) -> str | None:
    """Why ``--out`` cannot become the output folder, or None. Creates nothing, so that an edit
    failing later leaves no empty folder: the first existing path on the way must be a writable folder."""
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is None:
        return None  # not even the working folder exists: left to the mkdir after the work
    if existing == out and not out.is_dir():
        return f"--out {out} is a file; give a folder for the images and the JSON"
    if not existing.is_dir():
        return f"--out {out}: {existing} is a file, not a folder"
    if existing != out and not os.access(existing, os.W_OK | os.X_OK):
        return f"--out {out}: cannot create a folder in {existing} (permission denied)"
    return None


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {text}")
    return value


def _edit(args: argparse.Namespace) -> int:
    from . import models
    from .engine.export import save_edit
    from .engine.sampler import Editor
    from .errors import P2PError

    out = Path(args.out)
    # checked before the work (minutes on SD) and before the model loads, not after
    problem = _model_problem(args.model) or _edit_input_problem(args, out)
    if problem:
        print(f"p2p-widgets edit: {problem}", file=sys.stderr)
        return 2
    inversion = None
    try:
        editor = Editor(models.load_pipeline(args.model))
        defaults = editor.model.defaults  # the model's own (a checkpoint's: its family's), not SD's for all
        steps = defaults.steps if args.steps is None else args.steps
        guidance = defaults.guidance if args.guidance is None else args.guidance
        if args.image:  # a real image: invert it with the source prompt as its caption, edit from there
            inversion = editor.invert(
                args.image, args.source, method=args.invert, steps=steps, guidance=guidance, progress=True
            )
        progress = _Progress(steps)
        start = dict(inversion=inversion) if inversion is not None else dict(seed=args.seed)
        result = editor.edit(
            args.source,
            args.target,
            steps=steps,
            guidance=guidance,
            **start,
            cross=args.cross,
            self_attn=args.self_attn,
            reweight=dict(args.reweight) or None,
            blend=args.blend or None,
            baseline=True,
            callback=progress,
        )
        progress.close()
    except (P2PError, OSError) as exc:
        print(f"p2p-widgets edit: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    result.images[0].save(out / "source.png")
    result.images[1].save(out / "edit.png")
    result.baseline[1].save(out / "baseline.png")
    result.spec = result.spec.replace(model=args.model)
    if inversion is None:
        save_edit(result, out / "edit.json")
        print(f"wrote {out}/source.png, edit.png, baseline.png (fixed seed, no injection), edit.json")
        return 0
    from PIL import Image

    Image.fromarray(inversion.image).save(out / "input.png")
    save_edit(result, out / "edit.json", inversion)
    print(
        f"wrote {out}/input.png, source.png (reconstruction), edit.png, baseline.png (same inverted noise, "
        "no injection), edit.json with edit.inversion.json/.safetensors (rerun: p2p_widgets.load_edit)"
    )
    return 0


class _Progress:
    """Progress on stderr, fed by the sampler's step events: a bar redrawn in place (``\\r``) on a
    terminal; in a log (stderr redirected) a plain line every fifth of the run, no ``\\r``."""

    def __init__(self, total: int, stream=None):
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty())
        self.every = max(1, total // 5)
        self.shown = False

    def __call__(self, event) -> None:
        done = event.step + 1
        if self.live:
            bar = "#" * (30 * done // self.total)
            print(f"\r[{bar:<30}] step {done}/{self.total} (t={event.timestep})", end="", file=self.stream, flush=True)
            self.shown = True
        elif done % self.every == 0 or done == self.total:
            print(f"step {done}/{self.total} (t={event.timestep})", file=self.stream, flush=True)

    def close(self) -> None:
        if self.live and self.shown:
            print(file=self.stream)


def _eval(args: argparse.Namespace) -> int:
    from .pocket.eval import main as eval_main

    eval_main(["pocket", "--images", str(args.images), "--seeds", str(args.seeds)])
    return 0


EVALUATE_EXAMPLES = """examples:
  python -m p2p_widgets.evaluate.pocket_bench bench/ --n 40
  p2p-widgets evaluate bench/ --method pie-p2p-ddim --grid '{"cross": [0.2, 0.4]}' --seeds 0 1 \\
      --steps model --guidance model --out sweeps/cross
  p2p-widgets evaluate PIE_Bench/data --method pie-p2p --method pie-p2p-ddim --model ./sd14 --out sweeps/pie \\
      --metrics '{"dino": "./dino_vitb8", "clip": "./clip-vit-large-patch14", "lpips": "./squeeze.safetensors"}' \\
      --backend ray --address 10.0.0.2:6379 --workers 8
rerun the same command to finish a sweep that stopped: finished rows are skipped.
"""


def _number_or_model(text: str):
    if text == "model":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'model' (the model's default), got {text!r}") from None
    return int(value) if value.is_integer() and "." not in text else value


# deeper than any grid or metrics argument (a grid value is at most a rule's JSON, 40 levels)
MAX_ARGUMENT_DEPTH = 64


def _json_argument(text: str | None, what: str):
    """JSON text, '@file.json', or None."""
    import json

    from .errors import P2PError, check_nesting

    if text is None:
        return None
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise P2PError(f"--{what}: file {path} does not exist")
        text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise P2PError(f"--{what} is not valid JSON: {exc}") from None
    except RecursionError:  # json's decoder recurses once per nested array or object
        raise P2PError(f"--{what} nests deeper than {MAX_ARGUMENT_DEPTH} levels") from None
    check_nesting(f"--{what}", data, MAX_ARGUMENT_DEPTH)  # parsed, but deep enough to exhaust what reads it
    return data


def _evaluate(args: argparse.Namespace) -> int:
    from .errors import P2PError
    from .evaluate.sweep import format_summary, run_sweep

    try:
        metrics = args.metrics if args.metrics in ("none", "random") else _json_argument(args.metrics, "metrics")
        result = run_sweep(
            args.data,
            args.method or ["pie-p2p"],
            _json_argument(args.grid, "grid"),
            args.seeds,
            args.out,
            model=args.model,
            backend=args.backend,
            workers=args.workers,
            address=args.address,
            metrics=None if metrics == "none" else metrics,
            steps=args.steps,
            guidance=args.guidance,
            device=args.device,
            threads=args.threads,
            retry_errors=args.retry_errors,
            progress=not args.no_progress,
            types=args.types,
        )
    except (P2PError, OSError) as exc:
        print(f"p2p-widgets evaluate: {exc}", file=sys.stderr)
        return 2
    if not result.complete:
        print(
            f"p2p-widgets evaluate: {len(result.missing)} of {result.rows_expected} rows are missing "
            f"(a worker stopped: {next(iter(result.lost.values()), 'the run ended early')}); the table is not "
            "written. Rerun the same command to finish them.",
            file=sys.stderr,
        )
        return 1
    print(format_summary(result.summary))
    print(
        f"wrote {result.table} ({len(result.rows)} rows: {result.ran} run now, {result.skipped} from earlier runs, "
        f"{result.errors} failed) and {result.folder / 'summary.csv'}"
    )
    return 0


def _build_parser() -> argparse.ArgumentParser:
    # long: one flat list of argparse declarations, read top to bottom like the --help it prints
    parser = argparse.ArgumentParser(prog="p2p-widgets", description="Prompt-to-Prompt image editing in Jupyter.")
    parser.add_argument("--version", action="version", version=f"p2p-widgets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help=f"start JupyterLab on notebooks/{DEMO_NOTEBOOK}")
    demo.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    demo.add_argument("--port", type=port_arg, default=0, help="port, 0-65535 (default: 0, a free one)")
    demo.add_argument("--notebooks", metavar="DIR", help="folder holding the original notebooks")
    demo.add_argument(
        "--workdir",
        metavar="DIR",
        help=f"where the notebooks are copied and opened, so the originals (a clone's tracked files) stay clean "
        f"(default: ${WORKDIR_ENV}, else ~/p2p-widgets-notebooks; copies already there are kept)",
    )
    demo.add_argument("--in-place", action="store_true", help="open the original notebooks, not working copies")
    demo.add_argument("--no-browser", action="store_true", help="do not open a browser")
    demo.add_argument("--dry-run", action="store_true", help="print the command and URL, start nothing")
    demo.set_defaults(func=_demo)

    edit = sub.add_parser(
        "edit",
        help="headless edit: source, edit and fixed-seed baseline as PNG + the edit as JSON",
        epilog=EDIT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    edit.add_argument("source", help="the source prompt")
    edit.add_argument("target", help="the edited prompt")
    edit.add_argument("--seed", type=seed_arg, default=0, help="noise seed, 0 to 2**63 - 1 (default: 0)")
    edit.add_argument(
        "--steps",
        type=steps_arg,
        default=None,
        help=f"sampling steps, 1-1000 (default: the model's; {_defaults_help('steps')})",
    )
    edit.add_argument(
        "--guidance", type=float, default=None, help=f"guidance (default: the model's; {_defaults_help('guidance')})"
    )
    edit.add_argument("--cross", type=_fraction, default=0.8, help="fraction of steps injecting cross-attention")
    edit.add_argument(
        "--self", dest="self_attn", type=_fraction, default=0.4, help="fraction of steps injecting self-attention"
    )
    edit.add_argument(
        "--reweight",
        type=_reweight_pair,
        action="append",
        default=[],
        metavar="WORD=VALUE",
        help="scale a target word's attention (repeatable; negative allowed)",
    )
    edit.add_argument(
        "--blend",
        action="append",
        default=[],
        metavar="WORD",
        help="LocalBlend word: keep pixels outside its attention (repeatable)",
    )
    edit.add_argument(
        "--image",
        metavar="PATH",
        help="edit this picture (the source prompt is its caption) instead of generating from --seed",
    )
    edit.add_argument("--invert", default=None, choices=INVERT_METHODS, help=INVERT_HELP)
    edit.add_argument("--model", default="pocket", help=MODEL_HELP)
    edit.add_argument("--out", default="p2p-out", help="output folder (default: %(default)s)")
    edit.set_defaults(func=_edit)

    evaluate = sub.add_parser("eval", help="evaluate the pocket model and print its table")
    evaluate.add_argument(
        "--images",
        type=count_arg,
        metavar="N",
        default=256,
        help="captions scored for fidelity (0: skip; default: %(default)s)",
    )
    evaluate.add_argument(
        "--seeds",
        type=count_arg,
        metavar="N",
        default=32,
        help="scenes per P2P edit kind (0: skip; default: %(default)s)",
    )
    evaluate.set_defaults(func=_eval)

    sweep = sub.add_parser(
        "evaluate",
        help="a sweep of edit methods over a PIE-format dataset: one row per case, method, setting and seed",
        epilog=EVALUATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument("data", help="a folder in PIE-Bench's format (mapping_file.json + annotation_images/)")
    sweep.add_argument(
        "--method",
        action="append",
        metavar="NAME|JSON|FILE",
        help="a preset (pie-p2p, pie-p2p-ddim, pie-p2p-negative, masactrl, pnp), a method JSON object or "
        "a .json file (repeatable; default: pie-p2p)",
    )
    sweep.add_argument("--grid", metavar="JSON|@FILE", help="parameter values to sweep, e.g. '{\"cross\": [0.2, 0.4]}'")
    sweep.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds of every row (default: 0)")
    sweep.add_argument("--out", required=True, metavar="DIR", help="the sweep folder (rerun to resume)")
    sweep.add_argument("--backend", choices=("local", "ray"), default="local")
    sweep.add_argument("--workers", type=int, default=1, help="worker processes or Ray actors (default: 1)")
    sweep.add_argument("--address", metavar="ADDR", help="a running Ray cluster (host:port, ray://host:port, auto)")
    sweep.add_argument("--model", default="pocket", help=MODEL_HELP)
    sweep.add_argument(
        "--metrics",
        default="none",
        metavar="none|random|JSON",
        help="'none' (default), 'random' (random-weight metric models: plumbing only) or the metric "
        'models\' paths / hub ids as JSON: {"dino": ..., "clip": ..., "lpips": ...}',
    )
    sweep.add_argument("--steps", type=_number_or_model, default=None, help="override every method's steps ('model')")
    sweep.add_argument("--guidance", type=_number_or_model, default=None, help="override the guidance ('model')")
    sweep.add_argument("--types", type=int, nargs="+", default=None, help="only these edit type ids (0-9)")
    sweep.add_argument(
        "--device",
        default=None,
        help="torch device of the workers: cpu, cuda, cuda:1, mps (default: cuda if available)",
    )
    sweep.add_argument("--threads", type=int, default=None, help="torch CPU threads per worker, >= 1")
    sweep.add_argument("--retry-errors", action="store_true", help="rerun rows whose edit failed before")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.set_defaults(func=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
