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


class _RunTimeImports(ast.NodeVisitor):
    """Every import a module can run: at module level and inside functions, but not
    under ``if TYPE_CHECKING`` (those never run)."""

    def __init__(self) -> None:
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            self.found.add(node.module)
            self.found.update(f"{node.module}.{a.name}" for a in node.names)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.update(a.name for a in node.names)


def _imports(path: Path, *, runtime_only: bool) -> set[str]:
    """Modules of memos that ``path`` imports: those it can run (module level and
    function-local) when ``runtime_only``, else every import, type-only ones too."""
    tree = ast.parse(path.read_text())
    if runtime_only:
        visitor = _RunTimeImports()
        visitor.visit(tree)
        names = visitor.found
    else:
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
    return {name for name in names if name == "memos" or name.startswith("memos.")}


def _all_imports(path: Path) -> set[str]:
    """Every top-level package ``path`` imports, anywhere in it (type-only too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


# The layers, lowest first: a module imports (at run time) only modules of its own
# layer or below. Ground holds the rules and records every layer shares; the
# store is the system of record; the parts are the tiers and their machinery;
# the core and the model tiers compose parts; the façade composes those; the
# doors (service, CLI, integrations, programs) sit on top.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "memos.api",
        "memos.clock",
        "memos.config",
        "memos.errors",
        "memos.fields",
        "memos.filters",
        "memos.memory_block",
        "memos.records",
        "memos.retention",
        "memos.validation",
    ),
    ("memos.store",),
    (
        "memos.activation",
        "memos.attention",
        "memos.chat",
        "memos.data",
        "memos.kernels",
        "memos.lifecycle",
        "memos.lm",
        "memos.parametric",
        "memos.plaintext",
        "memos.scheduler",
    ),
    ("memos.core", "memos.model_jobs", "memos.model_tiers"),
    ("memos.client",),
    ("memos.cli", "memos.demo", "memos.eval", "memos.integrations", "memos.service", "memos"),
)


# The one deliberate reference up: ``Memos.connect`` returns the remote twin
# (imported when called, so the embedded SDK never loads the service).
UPWARD = {("memos.client", "memos.service.remote")}


def _layer(module: str) -> int:
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if prefix != "memos" and (module == prefix or module.startswith(prefix + ".")):
                return level
    return len(LAYERS) - 1  # the package itself


def _module_of(name: str, modules: dict[str, Path]) -> str | None:
    """The module an imported name lies in (``memos.store.item_by_id`` -> ``memos.store``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


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


def test_cli_help_loads_no_database_or_model_library(tmp_path: Path) -> None:
    """``memos --help`` stays fast (benchmarks/cli_startup.py times it): it loads no
    SQLAlchemy, torch, FAISS or transformers."""
    run = (
        "from typer.testing import CliRunner\nfrom memos.cli.main import app\n"
        "result = CliRunner().invoke(app, ['--help'])\nassert result.exit_code == 0\n"
        "import sys\nassert 'sqlalchemy' not in sys.modules, 'sqlalchemy'"
    )
    assert _heavy_after(run, tmp_path) == []


def test_no_import_cycle_among_the_library_modules() -> None:
    """Function-local imports count: a circle hidden inside a function is still one."""
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


def test_layers_point_down() -> None:
    modules = _modules()
    offenders = []
    for name, path in modules.items():
        for imported in _imports(path, runtime_only=True):
            target = _module_of(imported, modules)
            if target is None or target == "memos" or target == name:
                continue
            if _layer(target) > _layer(name) and (name, target) not in UPWARD:
                offenders.append(f"{name} (layer {_layer(name)}) imports {target}")
    assert sorted(set(offenders)) == []


def test_sql_lives_only_in_the_store() -> None:
    """SQLAlchemy and the ORM models are imported only under ``memos.store`` (and by
    the migrations): every other part asks the store."""
    offenders = []
    for name, path in _modules().items():
        if name.startswith("memos.store"):
            continue
        for imported in _all_imports(path):
            if imported.split(".")[0] == "sqlalchemy" or imported.startswith("memos.store.models"):
                offenders.append(f"{name}: {imported}")
    for path in CLI.rglob("*.py"):
        offenders += [f"cli/{path.name}: {i}" for i in _all_imports(path) if "sqlalchemy" in i]
    assert offenders == []
