"""Messages a newcomer meets on the command line (issue 11, section 5): one line, never a
traceback, whatever the pipe, the keyboard or the network does."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bench import cli
from bench.cli import main
from tests.helpers import photo

REPO = Path(__file__).resolve().parents[1]


def _parsers(p: argparse.ArgumentParser):
    yield p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_no_help_text_shows_a_doubled_percent_sign():
    """argparse %-formats help strings but prints descriptions as they are: `95%%` in a
    description shows literally. Every parser's help, subcommands of subcommands included."""
    seen = 0
    for p in _parsers(cli.build_parser()):
        text = p.format_help()  # a lone % in an argument's help would raise here
        assert "%%" not in text, (p.prog, [line for line in text.splitlines() if "%%" in line])
        seen += 1
    assert seen > 10
    report = next(p for p in _parsers(cli.build_parser()) if p.prog == "srbench report")
    assert "95% bootstrap" in report.format_help()


class _BrokenStdout(io.TextIOBase):
    """A stdout whose reader has gone (``| head -1``): every write or flush raises EPIPE."""

    def __init__(self, fd: int):
        self.fd = fd

    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return self.fd


@pytest.mark.parametrize("args", [["list", "datasets"], ["list", "methods"], ["list", "metrics"], ["--help"],
                                  ["report", "--help"]])
def test_broken_pipe_is_quiet_for_every_command(args, monkeypatch, capsys):
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        monkeypatch.setattr(sys, "stdout", _BrokenStdout(fd))
        code = main(args)
    finally:
        monkeypatch.undo()
        os.close(fd)
    assert code == 1
    assert capsys.readouterr().err == ""


def test_broken_pipe_through_a_real_pipe():
    """`srbench list datasets | head -1`, with the reader gone before srbench writes."""
    read, write = os.pipe()
    os.close(read)
    try:
        r = subprocess.run([sys.executable, "-m", "bench", "list", "datasets"], cwd=REPO, stdout=write,
                           stderr=subprocess.PIPE, text=True, check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        os.close(write)
    assert r.returncode == 1 and r.stderr == "", r.stderr


@pytest.mark.parametrize("where", ["build_parser", "parse_args", "import"])
def test_ctrl_c_during_start_up_is_one_line(where, monkeypatch, capsys):
    def interrupt(*a, **k):
        raise KeyboardInterrupt

    if where == "build_parser":
        monkeypatch.setattr(cli, "build_parser", interrupt)
    elif where == "parse_args":
        monkeypatch.setattr(cli._Parser, "parse_args", interrupt)
    else:  # while main imports a subcommand's heavy modules
        import builtins

        real_import = builtins.__import__

        def slow_import(name, *a, **k):
            if name == "score" or name.endswith(".score"):
                raise KeyboardInterrupt
            return real_import(name, *a, **k)

        monkeypatch.setattr(builtins, "__import__", slow_import)
    assert main(["list", "datasets"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("srbench: interrupted") and len(err.splitlines()) == 1, err


def test_data_fetch_without_network_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["data", "fetch", "set5", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("srbench: error: ") and len(err.splitlines()) == 1, err
    assert "eugenesiow/Set5" in err and str(tmp_path / "set5") in err and "HR/*" in err


def _images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(photo(24, 24, i)).save(folder / f"img_{i:03d}.png")


def _lines(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines() if line.strip()}


def test_list_datasets_shows_local_copies(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    for mod in (2, 3, 4):
        _images(root / "set5" / f"HR_mod{mod}", 5)
    _images(root / "urban100" / "HR", 3)
    assert main(["list", "datasets", "--data-root", str(root)]) == 0
    lines = _lines(capsys.readouterr().out)
    assert "eugenesiow/Set5" in lines["set5"]  # the catalogue is still there
    assert str(root / "set5") in lines["set5"] and "5/5" in lines["set5"] and "HR_mod4" in lines["set5"], lines["set5"]
    assert str(root / "urban100") in lines["urban100"] and "3/100" in lines["urban100"], lines["urban100"]
    assert "partial" in lines["urban100"]
    assert "not found" in lines["manga109"] and "built in" in lines["demo"], (lines["manga109"], lines["demo"])
    # SRBENCH_DATA is honoured the same way
    monkeypatch.setenv("SRBENCH_DATA", str(root))
    assert main(["list", "datasets"]) == 0
    assert str(root / "set5") in _lines(capsys.readouterr().out)["set5"]
    # the option belongs to datasets only
    assert main(["list", "methods", "--data-root", str(root)]) == 2
    assert "--data-root" in capsys.readouterr().err


def test_list_datasets_on_the_shared_data(shared_data, capsys):
    assert main(["list", "datasets", "--data-root", str(shared_data)]) == 0
    lines = _lines(capsys.readouterr().out)
    assert "100/100" in lines["urban100"] and "5/5" in lines["set5"] and "14/14" in lines["set14"]
    assert "x4 30/50" in lines["realsr-canon"], lines["realsr-canon"]


def test_list_datasets_names_a_broken_copy_and_goes_on(tmp_path, capsys):
    root = tmp_path / "data"
    _images(root / "set5" / "HR", 2)
    (root / "set5" / "HR" / "loop.png").symlink_to("loop.png")
    assert main(["list", "datasets", "--data-root", str(root)]) == 0
    lines = _lines(capsys.readouterr().out)
    assert "symbolic link loop" in lines["set5"] and "urban100" in lines


def test_run_at_a_scale_without_a_copy_says_so_once(tmp_path, capsys):
    root = tmp_path / "data"
    for mod in (2, 3, 4):
        _images(root / "set5" / f"HR_mod{mod}", 2)
    assert main(["run", "--datasets", "set5", "--scales", "5", "--methods", "bicubic,nearest", "--metrics", "psnr",
                 "--data-root", str(root), "--out", str(tmp_path / "run"), "--no-progress", "--no-report"]) == 1
    out = capsys.readouterr().out
    assert "{mod}" not in out and "srbench data fetch" not in out and " not found" not in out, out
    said = [line for line in out.splitlines() if line.startswith("!!")]
    assert len(said) == 1 and "no HR images for x5" in said[0] and "HR_mod5" in said[0], said
