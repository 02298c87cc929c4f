"""Architecture rules: import direction iqa <- sr_methods <- bench, and nothing heavy at import."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ALLOWED = {"iqa": set(), "sr_methods": {"iqa"}, "bench": {"iqa", "sr_methods"}}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_import_direction(package):
    for path in (REPO / package).rglob("*.py"):
        bad = imported_packages(path) - ALLOWED[package] - {package}
        assert not bad, f"{path.relative_to(REPO)} imports {bad}: the direction is iqa <- sr_methods <- bench"


def test_imports_are_light():
    code = ("import sys, iqa, sr_methods, bench, bench.cli; "
            "heavy = [m for m in ('open_clip', 'pyiqa', 'spandrel', 'torchvision', 'datasets', 'pandas', 'huggingface_hub') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_datasets_folder_holds_manifests_only():
    files = {p.suffix for p in (REPO / "datasets").iterdir()}
    assert files == {".toml"}
