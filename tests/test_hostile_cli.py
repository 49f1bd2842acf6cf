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


# -- bad inputs from a new user's first session: each refused by name before any expensive work ---------
class Expensive(AssertionError):
    """Raised by the stand-ins of the slow steps: a bad input got past the checks."""


def _expensive(what: str):
    def refuse(*args, **kwargs):
        raise Expensive(f"{what} started although the input was bad")

    return refuse


@pytest.fixture
def user_files(cli_env, tmp_path, monkeypatch):
    """A folder, a file, a 2-byte .safetensors, a photo, a workflow, bad YAML and a 4-record data set."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    from hierafash_core.synth.writer import SynthConfig, write_dataset

    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x\n")
    (tmp_path / "fake.safetensors").write_bytes(b"ab")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "ok.safetensors"))  # readable, but no model
    Image.new("RGB", (64, 96), (200, 200, 200)).save(tmp_path / "person.png")
    (tmp_path / "W.json").write_text('{"1": {"class_type": "X", "inputs": {}}}')
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    write_dataset(tmp_path / "DS", SynthConfig(count=4))
    for target in ("hierafash_core.mini.build.build_mini_designer", "hierafash_core.design.host.private_server",
                   "hierafash_core.masks.parse.parse_image", "hierafash_core.evaluation.classifier.ensure_classifier",
                   "hierafash_core.mini.pipeline.MiniDesigner.load",
                   "hierafash_core.synth.writer._write_one"):  # fmt: skip
        monkeypatch.setattr(target, _expensive(target))
    return tmp_path


DEAD = "http://127.0.0.1:1"  # nothing listens there: a check that let a case through ends in 'no ComfyUI answers'
REFUSALS = {
    "queue a folder": (["queue", "adir"], ["workflow 'adir' is a folder", "JSON file"]),
    "queue port past 65535": (["queue", "W.json", "--server", "http://127.0.0.1:99999"], ["port from 1 to 65535"]),
    "train fake base": (
        ["train", "--dataset", "DS", "--base", "fake.safetensors", "--output-dir", "o"],
        ["base 'fake.safetensors' is not a readable safetensors file"],
    ),
    "train output-dir is a file": (
        ["train", "--dataset", "DS", "--base", "ok.safetensors", "--output-dir", "afile"],
        ["--output-dir afile: is a file"],
    ),
    "train layout": (
        ["train", "--dataset", "DS", "--base", "ok.safetensors", "--output-dir", "o", "--layout", "x"],
        ["--layout 'x': use one of", "sd15"],
    ),
    "train resume": (
        ["train", "--dataset", "DS", "--base", "ok.safetensors", "--output-dir", "o", "--resume", "x"],
        ["resume=x: not a checkpoint folder"],
    ),
    "parse fake openpose weights": (
        ["parse", "person.png", "-a", "collar", "--openpose-weights", "fake.safetensors"],
        ["not a readable safetensors file"],
    ),
    "parse out is a file": (["parse", "person.png", "-a", "collar", "--out", "afile"], ["--out afile: is a file"]),
    "parse photo is a folder": (["parse", "adir", "-a", "collar"], ["photo adir: is a folder"]),
    "parse keypoints folder": (["parse", "person.png", "-a", "collar", "--keypoints", "adir"], ["adir: is a folder"]),
    "parse category": (["parse", "person.png", "-a", "collar", "--category", "Dres"], ["closest: Dress"]),
    "parse feather": (["parse", "person.png", "-a", "collar", "--feather", "-0.5"], ["--feather -0.5"]),
    "parse grow": (["parse", "person.png", "-a", "collar", "--grow", "5"], ["grow=5.0: must be between"]),
    "parse reach": (["parse", "person.png", "-a", "hem", "--reach", "ankle"], ["--reach 'ankle': give a clothing"]),
    "evaluate threads": (["evaluate", "--threads", "-1"], ["--threads -1"]),
    "evaluate out is a file": (["evaluate", "--out", "afile"], ["--out afile: is a file"]),
    "evaluate cases 0": (["evaluate", "--cases", "0"], ["--cases 0: must be at least 1"]),
    "evaluate cases past the classifier's held-out records": (
        ["evaluate", "--cases", "301"],
        ["--cases 301: at most 300 at --size default"],
    ),
    "evaluate steps 0": (["evaluate", "--steps", "0"], ["--steps 0: must be at least 1"]),
    "synth count": (["synth", "--out", "o", "--count", "99999999999"], ["at most 1,000,000"]),
    "synth out cannot be made": (["synth", "--out", "/proc/nope", "--count", "2"], ["--out /proc/nope: cannot make"]),
    "mini-designer out is a file": (["mini-designer", "build", "--out", "afile"], ["--out afile: is a file"]),
    "mini-designer recipe": (["mini-designer", "build", "--out", "md", "--recipe", "nosuch"], ["recipe=nosuch"]),
    "design sampler": (
        ["design", "person.png", "--sampler", "nosuch", "--server", DEAD],
        ["sampler='nosuch'", "ddim"],
    ),
    "design scheduler": (["design", "person.png", "--scheduler", "x", "--server", DEAD], ["scheduler='x'", "karras"]),
    "design seed": (
        ["design", "person.png", "--seed", "99999999999999999999999", "--server", DEAD],
        ["at most 18446744073709551615"],
    ),
    "design edit-resample 21": (
        ["design", "person.png", "--edit-resample", "21", "--server", DEAD],
        ["edit_resample=21: give a whole number"],
    ),
    "design timeout -1": (["design", "person.png", "--timeout", "-1", "--server", DEAD], ["at least 1 second"]),
    "design timeout 0.5": (["design", "person.png", "--timeout", "0.5", "--server", DEAD], ["at least 1 second"]),
    "design missing yaml": (
        ["design", "person.png", "--extra-model-paths", "nosuch.yaml", "--server", DEAD],
        ["--extra-model-paths nosuch.yaml: no such file"],
    ),
    "design bad yaml": (
        ["design", "person.png", "--extra-model-paths", "bad.yaml", "--server", DEAD],
        ["cannot read it as YAML"],
    ),
    "design photo folder": (["design", "adir", "--server", DEAD], ["photo 'adir': is a folder"]),
    "design checkpoint folder": (["design", "person.png", "--checkpoint", "adir"], ["'adir' is a folder"]),
    "design file folder": (["design", "--design", "adir"], ["design file 'adir' is a folder"]),
    "design pose folder": (["design", "--pose", "adir", "--server", DEAD], ["--pose adir: is a folder"]),
    "design port past 65535": (["design", "person.png", "--server", "http://127.0.0.1:99999"], ["1 to 65535"]),
    "dataset check a file": (["dataset", "check", "afile"], ["dataset folder afile is a file"]),
    "dataset check min-size": (["dataset", "check", "DS", "--min-size", "-1"], ["--min-size -1"]),
    "import-csv missing csv": (["dataset", "import-csv", "adir", "nosuch.csv", "o_ds"], ["csv=nosuch.csv does not"]),
    "preview out is a folder": (["dataset", "preview", "DS", "--out", "adir"], ["out=adir is a folder"]),
    "demo seed": (["demo", "--seed", "-5", "--server", DEAD], ["seed=-5"]),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_bad_inputs_are_refused_up_front_in_one_line(case, user_files, capsys):
    argv, expected = REFUSALS[case]
    code, out, err = run_cli(argv, capsys)
    command = argv[0]
    assert code == 2, (code, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines  # the error only: no banner, no doubled message
    assert lines[0].startswith(f"hierafash {command}: error: "), lines[0]
    for text in expected:
        assert text in lines[0], lines[0]
    assert lines[0].count("category=") <= 1  # said once


def test_a_word_for_a_number_names_the_fix(user_files, capsys):
    # argparse's own type errors come with its usage lines; the last line still says the fix
    code, _, err = run_cli(["design", "person.png", "--edit-resample", "abc", "--server", DEAD], capsys)
    assert code == 2 and "Traceback" not in err
    assert (
        err.strip()
        .splitlines()[-1]
        .endswith("argument --edit-resample: 'abc': give a whole number of passes per step, 1 (off) to 20")
    )


def test_demo_banner_follows_the_checks(user_files, capsys):
    code, out, err = run_cli(["demo", "--checkpoint", "test-model", "--server", DEAD], capsys)
    lines = err.splitlines()
    assert code == 2 and lines[0].startswith("demo: scikit-image's cameraman photo"), lines
    assert lines[-1].startswith("hierafash demo: error: --server http://127.0.0.1:1: no ComfyUI answers"), lines


def test_samplers_and_schedulers_are_comfyuis(monkeypatch):
    """The spec's names are those of the ComfyUI the pack runs on (read from its source, not imported)."""
    import ast

    from hierafash_core.design.spec import SAMPLERS, SCHEDULERS

    source = Path(__file__).parents[1] / ".cache" / "comfyui" / "comfy" / "samplers.py"
    if not source.is_file():
        pytest.skip(f"no ComfyUI source at {source}")
    values = {}
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = node.value
    ksampler = ast.literal_eval(values["KSAMPLER_NAMES"])
    extra = ast.literal_eval(values["SAMPLER_NAMES"].right)
    schedulers = [ast.literal_eval(k) for k in values["SCHEDULER_HANDLERS"].keys]
    assert SAMPLERS == tuple(ksampler + extra)
    assert SCHEDULERS == tuple(schedulers)


def test_server_without_the_sampler_is_refused_before_queuing():
    from hierafash_core.cli import CLIError
    from hierafash_core.cli.design_run import _check_server_samplers

    info = {"HieraFash_StagedKSampler": {"input": {"required": {"sampler_name": [["euler", "ddim"]],
                                                                "scheduler": [["normal"]]}}}}  # fmt: skip
    _check_server_samplers("http://127.0.0.1:8188", info, {"sampler": "euler"})  # the server has both
    with pytest.raises(CLIError, match=r"--scheduler 'karras': the ComfyUI at .* has no such scheduler; use one of "
                                       r"normal"):  # fmt: skip
        _check_server_samplers("http://127.0.0.1:8188", info, {"scheduler": "karras"})


def test_a_failed_stage_is_named_once():
    from hierafash_core.design.session import DesignError, _failure_message

    stage = argparse.Namespace(title="draft from concepts")
    exc = DesignError("draft from concepts: node 14 saved no images; see the ComfyUI log")
    assert _failure_message(None, stage, exc) == "draft from concepts: node 14 saved no images; see the ComfyUI log"


def test_synth_allocates_nothing_per_record_before_the_first(tmp_path, monkeypatch):
    """A million-record set is drawn lazily: stopping at the first record has allocated only a few MB."""
    import tracemalloc

    from hierafash_core.synth import writer

    monkeypatch.setattr(writer, "_write_one", _expensive("record drawing"))
    tracemalloc.start()
    try:
        with pytest.raises(Expensive):
            writer.write_dataset(tmp_path / "big", writer.SynthConfig(count=writer.MAX_COUNT), workers=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8e6, f"{peak / 1e6:.0f} MB allocated before the first record"


def test_pose_detection_on_import_warns_nothing(monkeypatch):
    """The importers' detector hands torch a writable array (no 'NumPy array is not writable' warning)."""
    import warnings

    import numpy as np
    from PIL import Image

    from hierafash_core.dataset import importers
    from hierafash_core.pose import detect as detect_module

    seen = {}

    def fake_detect(rgb):
        seen["shape"] = tuple(rgb.shape)
        raise detect_module.NoPersonFound("nobody")

    monkeypatch.setattr(detect_module, "detect_pose", fake_detect)
    monkeypatch.setattr(detect_module, "mediapipe_available", lambda: True)
    detector = importers.pack_pose_detector()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert detector(Image.fromarray(np.zeros((12, 8, 3), np.uint8))) is None
    assert seen["shape"] == (1, 3, 12, 8)
