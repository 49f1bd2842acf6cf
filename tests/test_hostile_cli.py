"""Property-based hostile command lines for every `hierafash` subcommand: one-line errors, never a traceback.

Each case is a subcommand with a cause of failure that cannot be missed (an input file that does not
exist, or a ComfyUI server on 127.0.0.1 that is not there), plus up to three of the subcommand's own
options drawn by hypothesis with hostile values (NaN, infinities, negative and huge numbers, empty and
enormous strings, unusual Unicode, paths that climb out or name a folder or a device) and sometimes a
stray argument. The command must return 1 or 2 (or argparse's exit 2) with exactly one
``hierafash ...: error:`` line, no traceback, within CASE_SECONDS, and open no socket beyond loopback
(the in-process network guard of tests/netguard). ``mini-designer build`` is left out: its arguments
are few and checked by tests/test_mini_designer.py, and a case that slipped through would start an
hour-long build. The number of cases is printed at the end of the session (tests/hostile.py).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import pytest
from hostile import record
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hierafash_core.cli import build_parser, main
from hierafash_core.comfy_server import free_port

sys.path.insert(0, str(Path(__file__).parent / "netguard"))
from sitecustomize import install  # noqa: E402 - the network guard, used in-process here

CASE_SECONDS = 30
MISSING = "missing-dir/missing"
HOSTILE = ["nan", "NaN", "inf", "-inf", "-1", "0", "-0.5", "1e999", "99999999999999999999", "2.5", "abc", "", " ",
           "x" * 5000, "\u202e\u0627\u0644\u202c", "\U0001f457" * 40, "\x1b[31m", "\udcff", "e\u0301" * 30,
           "../../../etc/passwd", "/", ".", "/dev/null", "-", "--", "=", "a=b", "collar=", "=V-Neck",
           "http://127.0.0.1:1", "ftp://127.0.0.1/x", "{}", "[]", '{"a": NaN}']  # fmt: skip
PLAIN = ["1", "2", "3", "64", "0.5", "out", "collar", "Dress"]
SKIP_OPTIONS = {"-h", "--help", "--debug", "--server", "--comfyui"}


def skeletons(server: str) -> dict[str, list[str]]:
    """Per subcommand: arguments that make it fail for sure (missing inputs, an absent server)."""
    return {
        "queue": ["queue", f"{MISSING}.json", "--server", server],
        "synth": ["synth", "--out", "synth-out", "--count", "-3"],
        "dataset check": ["dataset", "check", MISSING],
        "dataset preview": ["dataset", "preview", MISSING, "--out", "preview"],
        "dataset import-paper": ["dataset", "import-paper", MISSING, "imported"],
        "dataset import-csv": ["dataset", "import-csv", MISSING, f"{MISSING}.csv", "imported"],
        "train": ["train", "--dataset", MISSING, "--cpu"],
        "parse": ["parse", f"{MISSING}.png", "-a", "collar"],
        "design": ["design", f"{MISSING}.png", "--server", server],
        "demo": ["demo", "--server", server],
        "mini-designer info": ["mini-designer", "info", "--out", MISSING],
        "evaluate": ["evaluate", "--model", f"{MISSING}.safetensors"],
    }


def subparser(path: list[str]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def options_of(parser: argparse.ArgumentParser, taken: set[str]) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and not (set(a.option_strings) & (SKIP_OPTIONS | taken))]


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"no answer within {CASE_SECONDS} s")


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative default output folders land here
    monkeypatch.setenv("HIERAFASH_MODELS", str(tmp_path / "models"))  # never the real mini designer folder
    net: list[str] = []
    switch = install(None, block=True, sink=net)
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        yield net
    finally:
        switch["on"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
SUITE = "hostile command lines (CLI)"


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", list(skeletons("http://127.0.0.1:1")))
def test_hostile_command_lines_end_in_one_line_errors(command, cli_env, capsys):
    server = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    base = skeletons(server)[command]
    path = command.split()
    actions = options_of(subparser(path), {t for t in base if t.startswith("-")})

    @SETTINGS
    @given(data=st.data())
    def case(data):
        argv = list(base)
        chosen = data.draw(st.lists(st.sampled_from(actions), max_size=3), label="options") if actions else []
        for action in chosen:
            flag = data.draw(st.sampled_from(action.option_strings), label="flag")
            if action.nargs == 0:
                argv.append(flag)
            elif action.choices and data.draw(st.booleans(), label="a listed choice"):
                argv += [flag, str(data.draw(st.sampled_from(list(action.choices))))]
            else:  # sometimes a plain value, so a case gets past argparse's type checks into the command
                argv += [flag, data.draw(st.sampled_from(HOSTILE + PLAIN), label="value")]
        if data.draw(st.booleans(), label="stray argument"):
            argv.append(data.draw(st.sampled_from(HOSTILE[:12]), label="stray"))
        code, out, err = run_cli(argv, capsys)
        errors = [line for line in err.splitlines() if line.startswith("hierafash") and ": error:" in line]
        problem = None
        if "Traceback" in err or "Traceback" in out:
            problem = "printed a traceback"
        elif code not in (1, 2):
            problem = f"exit code {code}"
        elif len(errors) != 1:
            problem = f"{len(errors)} error lines"
        elif any(" BLOCKED" in line for line in cli_env):
            problem = f"opened a socket beyond loopback: {cli_env}"
        record(SUITE, "failed" if problem else f"refused ({'argparse' if 'usage:' in err else 'the command'})")
        assert problem is None, f"hierafash {' '.join(repr(a)[:60] for a in argv)}: {problem}\n{err[-3000:]}"

    case()
