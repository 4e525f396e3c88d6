"""The shape of the package: rooms without cycles, private names kept private,
and heavy backends left unloaded until used."""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import memos

HEAVY = ("torch", "transformers", "faiss", "sentence_transformers", "triton")
ROOT = Path(memos.__file__).parent
CLI = ROOT.parent / "cli"
TESTS = Path(__file__).parent


def _modules() -> dict[str, Path]:
    found = {"memos": ROOT / "__init__.py"}
    for info in pkgutil.walk_packages([str(ROOT)], prefix="memos."):
        spec = info.module_finder.find_spec(info.name.rsplit(".", 1)[-1], None)  # type: ignore[call-arg]
        assert spec is not None and spec.origin is not None
        found[info.name] = Path(spec.origin)
    return found


def _imports(path: Path, *, runtime_only: bool) -> set[str]:
    """Modules of memos that ``path`` imports (module level only when ``runtime_only``:
    imports under ``if TYPE_CHECKING`` and inside functions run late or never)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if runtime_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("memos"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("memos"))
    return out


def _heavy_after(code: str, home: Path) -> list[str]:
    probe = (
        f"{code}\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    env = {**os.environ, "MEMOS_HOME": str(home), "MEMOS_EMBEDDER": "hashing"}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_memos_and_its_facade_loads_no_heavy_backend(tmp_path: Path) -> None:
    assert _heavy_after("import memos\nfrom memos import Memos, SearchFilter", tmp_path) == []


def test_cli_help_and_read_only_commands_load_no_heavy_backend(tmp_path: Path) -> None:
    stocked = (
        "from memos import Memos\nwith Memos() as m:\n    m.add('a memory')\n    m.search('memory')"
    )
    assert _heavy_after(stocked, tmp_path) == ["faiss"]  # searching loads the index
    commands = [
        ["--help"],
        ["ls", "--json"],
        ["show", "--help"],
        ["stats", "--json"],
        ["jobs", "--json"],
        ["inspect", "--json"],
        ["kv", "ls", "--json"],
        ["adapters", "ls", "--json"],
    ]
    run = (
        "from typer.testing import CliRunner\nfrom memos.cli.main import app\n"
        f"for args in {commands!r}:\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0, (args, result.output)"
    )
    assert _heavy_after(run, tmp_path) == []


def test_no_import_cycle_among_the_library_modules() -> None:
    modules = _modules()
    graph = {
        name: {m for m in _imports(path, runtime_only=True) if m in modules and m != name}
        for name, path in modules.items()
    }
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError("import cycle: " + " -> ".join([*trail, name]))
        if name in done:
            return
        for dep in graph[name]:
            # a package's own __init__ importing its submodule is not a cycle back
            if not (name.startswith(dep + ".") and dep != "memos"):
                visit(dep, [*trail, name])
        done.add(name)

    for name in graph:
        visit(name, [])


def test_only_the_doors_import_the_facade() -> None:
    offenders = [
        name
        for name, path in _modules().items()
        # the façade, the service doors, and the programs that use it as a user would
        if name not in ("memos", "memos.client", "memos.demo", "memos.eval.locomo")
        and not name.startswith("memos.service")
        and "memos.client" in _imports(path, runtime_only=False)
    ]
    assert offenders == []


def test_no_private_name_is_used_across_modules() -> None:
    offenders = []
    for path in [*ROOT.rglob("*.py"), *CLI.rglob("*.py"), *TESTS.rglob("*.py")]:
        tree = ast.parse(path.read_text())
        aliases = {
            a.asname or a.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("memos")
            for a in node.names
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("memos"):
                offenders += [f"{path.name}: {a.name}" for a in node.names if a.name[0] == "_"]
            elif (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id not in ("self", "cls")
                and (node.value.id in aliases or node.value.id in ("mem", "memos"))
            ):
                offenders.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert offenders == []
