"""Every command the README and docs/*.md show still parses, so that the pages cannot drift from the
code: each line of their ```bash blocks is parsed by the program it names, without running it.

- `python -m MODULE ...` and `python scripts/X.py ...`: the module's own argparse parser (its
  `parse_args` stops the command right after parsing: nothing is computed, no file is written);
- `ray ...`, `mlflow ...`: the click command they name, its options parsed (`make_context`);
- `tensorboard ...`: TensorBoard's own flag parser (`TensorBoard.configure`);
- `./scripts/setup.sh`, `pip install -e '.[EXTRA]'`: the script exists, the extra is in pyproject.toml;
- ```python blocks compile.

Commands of programs that are not this project's or its libraries' (docker, kubectl, openssl, ...) are
listed in OTHER_PROGRAMS and not parsed; any other command fails the test, so a new kind of command
in the docs must be classified here.
"""
from __future__ import annotations

import argparse
import re
import runpy
import shlex
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from tests.helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OTHER_PROGRAMS = {"docker", "kubectl", "openssl", "mkdir", "export", "cd", "git", "apt-get", "sudo", "kill",
                  "tmux", "cat", "ls", "ssh", "nvidia-smi", "chromium", "podman", "echo", "tail", "rm", "cp"}


class Parsed(BaseException):
    """Raised by argparse once a command line parsed: the command stops there (a BaseException, so that
    no command's error handling takes it for a failure)."""


def blocks(page: Path, language: str) -> list[str]:
    # a block inside a list item is indented as a whole
    return [textwrap.dedent(b) for b in re.findall(rf"```{language}\n(.*?)```", page.read_text(), flags=re.S)]


def commands(page: Path) -> list[list[str]]:
    """The commands of a page's bash blocks, as words: continuation lines joined, comments dropped,
    `a && b` split, a trailing `&` dropped, leading VAR=value assignments dropped."""
    found = []
    for block in blocks(page, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            command: list[str] = []
            for word in [*words, "&&"]:
                if word in ("&&", "||", ";", "&", "|"):
                    while command and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", command[0]):
                        command.pop(0)
                    if command:
                        found.append(command)
                    command = []
                else:
                    command.append(word)
    return found


def program(words: list[str]) -> str:
    return Path(words[0]).name


def parse_python(words: list[str], monkeypatch) -> None:
    """`python -m MODULE ARGS` or `python scripts/X.py ARGS`: run until argparse has parsed ARGS."""
    def parsed(self, args=None, namespace=None):
        result = original(self, args, namespace)
        raise Parsed(result)
    original = argparse.ArgumentParser.parse_args
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parsed)
    # A checkpoint argument is located as it is parsed (models:/ and runs:/ fetched from MLflow): here
    # it is taken as written, so a page's placeholder needs no registered model.
    import matnet.locate
    monkeypatch.setattr(matnet.locate, "checkpoint_folder", lambda argument: argument)
    if words[1] == "-m":
        if words[2] == "pytest":
            return  # the test command itself: what CI runs
        module, argv = words[2], words[3:]
        monkeypatch.setattr(sys, "argv", [module, *argv])
        run = lambda: runpy.run_module(module, run_name="__main__", alter_sys=False)  # noqa: E731
    else:
        script, argv = ROOT / words[1], words[2:]
        assert script.is_file(), f"{script} does not exist"
        monkeypatch.setattr(sys, "argv", [str(script), *argv])
        run = lambda: runpy.run_path(str(script), run_name="__main__")  # noqa: E731
    try:
        run()
    except Parsed:
        return
    except SystemExit as e:  # --help exits 0; a one-line error exits 2, after printing what was wrong
        if e.code == 0 and ("--help" in argv or "-h" in argv):
            return
        raise AssertionError(f"exit status {e.code}") from None
    raise AssertionError("the command ran to its end without parsing a command line")


def parse_click(words: list[str], monkeypatch) -> None:
    """`ray ...` / `mlflow ...`: the (sub)command found through the click groups, its options parsed;
    the command line after a `--` (`ray job submit -- python -m search.run ...`) is checked too."""
    import click
    if program(words) == "ray":
        from ray.scripts.scripts import cli
    else:
        from mlflow.cli import cli
    command, args = cli, words[1:]
    while isinstance(command, click.Group):
        sub = command.get_command(click.Context(command), args[0]) if args else None
        assert sub is not None, f"{program(words)} has no command {args[:1]}"
        command, args = sub, args[1:]
    command.make_context(command.name, list(args))
    if "--" in args:
        check(args[args.index("--") + 1:], monkeypatch)


def check(words: list[str], monkeypatch) -> None:
    name = program(words)
    if name in ("python", "python3"):
        parse_python(words, monkeypatch)
    elif name in ("ray", "mlflow"):
        parse_click(words, monkeypatch)
    elif name == "bash" and words[1:2] == ["scripts/gpu_check.sh"]:
        # The wrapper passes its arguments on to scripts/gpu_check.py after its own (see the script).
        assert "scripts/gpu_check.py" in (ROOT / "scripts" / "gpu_check.sh").read_text()
        parse_python(["python", "scripts/gpu_check.py", "--out", "out", "--data-dir", "data", "--budget-minutes", "8",
                      "--device", "cuda", *words[2:]], monkeypatch)
    elif words[0] == "./scripts/setup.sh":
        assert (ROOT / "scripts" / "setup.sh").stat().st_mode & 0o111
    elif name == "pip":
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        for word in words:
            match = re.fullmatch(r"\.\[([\w,-]+)\]", word)
            if match:
                assert set(match.group(1).split(",")) <= set(extras), f"{word}: no such extra in pyproject.toml"
    elif name == "tensorboard":
        from tensorboard import program as tensorboard
        tensorboard.TensorBoard().configure(argv=["tensorboard", *words[1:]])  # an unknown flag exits 2
    elif name == "optuna-dashboard":
        pass  # an optional extra ('.[dashboard]'), not installed by setup
    else:
        assert name in OTHER_PROGRAMS, f"{' '.join(words)}: a command of an unknown program; classify it here"


CASES = [(page.relative_to(ROOT).as_posix(), words) for page in PAGES for words in commands(page)]


def test_the_pages_show_commands_and_every_kind_is_checked():
    assert len(CASES) >= 40
    kinds = {program(words) for _, words in CASES}
    assert {"python", "ray", "mlflow"} <= kinds, kinds


@pytest.mark.parametrize("where, words", CASES, ids=[f"{w}:{' '.join(c)[:60]}" for w, c in CASES])
def test_the_command_parses(where, words, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # whatever a program touches while parsing lands here (none should)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    try:
        check(words, monkeypatch)
    except AssertionError as e:
        raise AssertionError(f"{where}: {' '.join(words)}: {e}") from None


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_blocks_compile(page):
    for block in blocks(page, "python"):
        compile(block, str(page), "exec")


def test_a_command_that_no_longer_parses_is_caught(monkeypatch):
    """The check itself: a flag the program does not have fails it."""
    with pytest.raises(AssertionError):
        check(["python", "-m", "search.run", "spaces/quickstart.yaml", "--no-such-flag"], monkeypatch)
    with pytest.raises(Exception):
        check(["ray", "start", "--no-such-flag"], monkeypatch)
    check(["ray", "start", "--head", "--port", "6379"], monkeypatch)


def test_a_tensorboard_command_that_no_longer_parses_is_caught(monkeypatch):
    with pytest.raises(SystemExit):
        check(["tensorboard", "--no-such-flag", "x"], monkeypatch)
    check(["tensorboard", "--logdir", "x"], monkeypatch)
