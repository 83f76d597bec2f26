"""The package layering (pyproject.toml, [tool.importlinter]): every folder of src/bbbprune imports
only from the folders below it, with no exception listed, and no module imports itself back
through a cycle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "bbbprune"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _contract() -> dict:
    (contract,) = [
        c for c in PYPROJECT["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    ]
    return contract


def _layer_names(contract: dict) -> set[str]:
    return {n.strip().strip("()") for layer in contract["layers"] for n in layer.split("|")}


def _lint_imports(*args: str, **kwargs) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    return subprocess.run(
        [exe, "--no-cache", *args], capture_output=True, text=True, timeout=120, **kwargs
    )


def test_the_layers_contract_holds():
    result = _lint_imports(cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contract_names_every_folder_and_lists_no_exception():
    contract = _contract()
    assert contract["type"] == "layers" and contract["exhaustive"] is True
    assert "ignore_imports" not in contract
    top_level = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").exists()
    }
    assert top_level - _layer_names(contract) == set()


def test_an_upward_import_breaks_the_contract(tmp_path):
    """A copy of the package where a network module imports the command line: lint-imports
    must reject it (so the contract test above can fail)."""
    shutil.copytree(PACKAGE, tmp_path / "bbbprune", ignore=shutil.ignore_patterns("__pycache__"))
    models = tmp_path / "bbbprune" / "nets" / "models.py"
    models.write_text(models.read_text() + "\nfrom ..cli import main  # noqa: E402,F401\n")
    config = tmp_path / "contracts.toml"
    config.write_text((ROOT / "pyproject.toml").read_text())
    result = _lint_imports(
        "--config", str(config), cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": ""}
    )
    assert result.returncode != 0
    assert "bbbprune.nets.models -> bbbprune.cli" in result.stdout


def test_loading_a_model_in_a_table_breaks_the_records_only_contract(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "bbbprune", ignore=shutil.ignore_patterns("__pycache__"))
    figures = tmp_path / "bbbprune" / "report" / "figures.py"
    figures.write_text(
        figures.read_text() + "\nfrom ..run.checkpoints import load_run  # noqa: E402,F401\n"
    )
    config = tmp_path / "contracts.toml"
    config.write_text((ROOT / "pyproject.toml").read_text())
    result = _lint_imports(
        "--config", str(config), cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": ""}
    )
    assert result.returncode != 0
    assert "Tables read records only BROKEN" in result.stdout


def test_no_import_cycles():
    graph = grimp.build_graph("bbbprune", cache_dir=None)
    modules = {m for m in graph.modules if m.startswith("bbbprune")}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(graph.find_modules_directly_imported_by(module) & modules):
            if state.get(other) == 1:
                cycle = path[path.index(other) :] + [other] if other in path else [module, other]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other, [*path, other])
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])


def test_every_folder_is_a_listed_package():
    """pyproject's explicit package list (needed for the conf/ mapping) names every folder."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {
        "bbbprune." + ".".join(p.parent.relative_to(PACKAGE).parts)
        for p in PACKAGE.rglob("__init__.py")
    }
    found = {f.rstrip(".") for f in found}
    conf = ROOT / "conf"
    found |= {
        ".".join(["bbbprune.conf", *d.relative_to(conf).parts]).rstrip(".")
        for d in [conf, *conf.rglob("*")]
        if d.is_dir() and "__pycache__" not in d.parts
    }
    assert found - listed == set()
