"""Command line: ``p2p-widgets --version`` and ``p2p-widgets demo``.

Subcommands register in ``_build_parser``; each sets ``func`` to a callable taking the parsed
arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

from . import __version__

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


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def demo_command(args: argparse.Namespace) -> tuple[list[str], Path]:
    """The JupyterLab command line the demo runs (also what --dry-run prints) and its working
    folder (the notebook argument is resolved against it)."""
    folder = _find_notebooks(args.notebooks)
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
    args.port = args.port or _free_port(args.ip)
    args.token = secrets.token_hex(16)
    cmd, folder = demo_command(args)
    url = f"http://{args.ip}:{args.port}/lab/tree/{DEMO_NOTEBOOK}?token={args.token}"
    if args.dry_run:
        print(" ".join(cmd))
        print(url)
        return 0
    print(f"Starting JupyterLab; open {url}", flush=True)
    if os.name == "posix":
        # become JupyterLab, so that signals sent to this process reach the server itself
        os.chdir(folder)
        os.execv(cmd[0], cmd)
    try:
        return subprocess.call(cmd, cwd=folder)
    except KeyboardInterrupt:
        return 130


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p2p-widgets", description="Prompt-to-Prompt image editing in Jupyter.")
    parser.add_argument("--version", action="version", version=f"p2p-widgets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help=f"start JupyterLab on notebooks/{DEMO_NOTEBOOK}")
    demo.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    demo.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    demo.add_argument("--notebooks", metavar="DIR", help="folder holding the notebooks")
    demo.add_argument("--no-browser", action="store_true", help="do not open a browser")
    demo.add_argument("--dry-run", action="store_true", help="print the command and URL, start nothing")
    demo.set_defaults(func=_demo)
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
