"""The package's shape stays true: imports point down the pipeline (a static check of every import,
lazy ones included), there are no import cycles, and the commands that need no training do not load
torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "limitlab"

# The pipeline, in order: a module may import modules of its own layer and of the layers above it.
LAYERS = [
    ("foundation", ["limitlab.errors", "limitlab.registry"]),
    ("datasets", ["limitlab.data", "limitlab.data.*"]),
    ("noise", ["limitlab.noise_files", "limitlab.transitions", "limitlab.noise"]),
    ("measurements", ["limitlab.metrics"]),  # pure functions of predictions and labels
    ("run data", ["limitlab.data.run"]),
    ("models", ["limitlab.architectures", "limitlab.fuse", "limitlab.models", "limitlab.factories"]),  # factories: a user's network by import path
    ("objectives", ["limitlab.reductions", "limitlab.limit", "limitlab.losses", "limitlab.robust_losses",
                    "limitlab.objectives", "limitlab.objectives_state", "limitlab.methods"]),
    ("config", ["limitlab.config", "limitlab.budget"]),  # budget: the estimator's "auto" sizes
    ("run directory", ["limitlab.rundir", "limitlab.runlock"]),
    ("loop", ["limitlab.runtime", "limitlab.onecycle", "limitlab.epoch", "limitlab.epoch_probs", "limitlab.loop",
              "limitlab.train"]),
    ("experiments", ["limitlab.experiments", "limitlab.experiments.*"]),
    ("analysis", ["limitlab.analysis", "limitlab.analysis.*"]),
    ("interfaces", ["*"]),
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def layer(module: str) -> int:
    # the most specific pattern wins: limitlab.data.run is "run data", not "datasets"
    matches = [(len(p.rstrip("*")), i) for i, (_, patterns) in enumerate(LAYERS) for p in patterns
               if fnmatch(module, p)]
    return max(matches)[1]


def imports_of(module: str) -> set[str]:
    """limitlab modules that ``module`` imports anywhere (functions included), except under
    ``if TYPE_CHECKING:``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return {m for m in found if m in MODULES and m != module}


def test_every_module_has_a_layer():
    assert {m: LAYERS[layer(m)][0] for m in MODULES}  # a module matching no pattern would raise here


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_pipeline(module):
    upward = [f"{m} ({LAYERS[layer(m)][0]})" for m in sorted(imports_of(module)) if layer(m) > layer(module)]
    assert not upward, f"{module} ({LAYERS[layer(module)][0]}) imports from a later stage: {', '.join(upward)}"


def test_no_import_cycles():
    graph = {m: imports_of(m) for m in MODULES}
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in sorted(graph[m]):
            visit(n, path + [m])
        state[m] = 2

    for m in sorted(graph):
        visit(m, [])


@pytest.mark.parametrize("argv", [["--help"], ["presets", "mnist-n1000-uniform0.8-limit-l"], ["--version"]])
def test_commands_without_training_do_not_import_torch(argv):
    code = ("import sys\nfrom limitlab.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')" % argv)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "NO-TORCH"


def test_presets_build_configs_without_the_loop():
    code = ("import sys\nfrom limitlab.experiments.expand import expand\nexpand('mnist-uniform')\n"
            "print(sorted(m for m in sys.modules if m in ('torch', 'limitlab.train', 'limitlab.data')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
