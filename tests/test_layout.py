"""The package's shape: no import cycles, short functions, one error root (for errors users see), public names."""

import ast
from pathlib import Path

import p2p_widgets

PACKAGE = Path(p2p_widgets.__file__).parent
LONG = 60  # lines of code in a function body (docstring excluded) before it needs a reason


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict) -> set[str]:
    """Package modules ``name`` imports anywhere (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                for candidate in (f"{base}.{alias.name}", base):
                    if candidate in modules:
                        found.add(candidate)
                        break
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
    found.discard(name)
    # a package's __init__ is not a dependency of its own modules (Python imports it first anyway)
    return {m for m in found if not name.startswith(m + ".")}


def test_the_package_has_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def _long_functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                body = body[1:]  # the docstring
            if not body:
                continue
            length = node.end_lineno - body[0].lineno + 1
            header = "\n".join(lines[node.lineno - 1 : body[0].lineno + 2])
            if length > LONG and "# long:" not in header:
                yield f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({length} lines)"


def test_functions_are_short_or_say_why_not():
    assert list(_long_functions()) == []


def test_one_error_root():
    from p2p_widgets import errors

    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert all(issubclass(c, errors.P2PError) for c in classes)
    roots = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ClassDef)
                and not node.name.startswith("_")
                and any(isinstance(b, ast.Name) and b.id in ("Exception", "ValueError") for b in node.bases)
            ):
                roots.add(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert roots == {"errors.py:P2PError"}


def test_public_names_stay_importable_from_the_package():
    expected = {
        "AlphaSchedule",
        "AlphaTimeline",
        "AttentionPlayer",
        "AttentionStore",
        "EditResult",
        "EditRule",
        "ParamRule",
        "Param",
        "Combine",
        "MutualSelfAttention",
        "MaskedMutualSelfAttention",
        "SweepExplorer",
        "BlockProbe",
        "PlugAndPlay",
        "StyleAligned",
        "KVInjection",
        "EditSpec",
        "Editor",
        "Inversion",
        "LocalBlend",
        "Mapper",
        "ModelBackend",
        "backend_for",
        "Prompt",
        "Refine",
        "Replace",
        "Reweight",
        "Studio",
        "TokenAligner",
        "__version__",
        "align",
        "edit_from_spec",
        "invert",
        "load_edit",
        "load_pipeline",
        "load_pocket",
        "load_flow_pocket",
        "load_tokenizer",
        "register_rule",
        "rule_from_dict",
        "save_edit",
        "spec_to_json",
    }
    assert set(p2p_widgets.__all__) == expected
    for name in expected:
        assert getattr(p2p_widgets, name) is not None
