"""Nothing of the pack listens beyond 127.0.0.1, and its commands talk to nothing but the server they were given.

Every socket call is seen by the network guard (tests/netguard: an audit hook that logs connect,
bind, sendto and address lookups, and refuses any beyond loopback): in the ComfyUI server that the
pack's ComfyServer starts (the guarded test server, whose log covers its start-up, the pack's import
and the load and fault tests' prompts) and in-process around `hierafash design` and `hierafash queue`.
The listening sockets of the server are read from /proc as well. The commands that start a server
(`design`/`demo` without --server, the trainer's checks) all go through ComfyServer, whose command
line is checked here; none of them has an option to listen elsewhere.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
from pathlib import Path

import pytest
from graphs import TINY_CKPT, tiny_graph

from hierafash_core import comfy_server
from hierafash_core.cli import build_parser, main

sys.path.insert(0, str(Path(__file__).parent / "netguard"))
from sitecustomize import LOOPBACK, install  # noqa: E402

pytestmark = pytest.mark.comfy


def listening_addresses(pid: int) -> list[str]:
    """Local addresses of the TCP sockets ``pid`` listens on (from /proc), as ``ip:port``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                address, port = cols[1].split(":")
                raw = bytes.fromhex(address)
                ip = ".".join(str(b) for b in raw[::-1]) if width == 8 else raw.hex()
                found.append(f"{ip}:{int(port, 16)}")
    return found


def test_the_pack_server_listens_on_loopback_only_and_calls_nowhere(guarded_server):
    port = urllib.parse.urlparse(guarded_server.url).port
    assert listening_addresses(guarded_server.process.pid) == [f"127.0.0.1:{port}"]
    lines = Path(guarded_server.net_log).read_text().splitlines()
    pid = str(guarded_server.process.pid)
    binds = [line for line in lines if line.split()[:2] == [pid, "socket.bind"]]
    assert binds and all(line.split()[2] in LOOPBACK for line in binds), binds  # ::1 port 0: a probe for IPv6
    assert not [line for line in lines if "BLOCKED" in line], "the server tried to reach beyond loopback"


def test_server_command_line_binds_loopback_and_no_command_can_change_it(monkeypatch, tmp_path):
    seen = []

    class Stop(Exception):
        pass

    def fake_popen(cmd, **kwargs):
        seen.append(cmd)
        raise Stop

    monkeypatch.setattr(comfy_server.subprocess, "Popen", fake_popen)
    with pytest.raises(Stop):
        comfy_server.ComfyServer(tmp_path, tmp_path).start(timeout=1)
    cmd = seen[0]
    assert cmd[cmd.index("--listen") + 1] == "127.0.0.1" and cmd.count("--listen") == 1
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    flags = {f for p in sub.choices.values() for a in p._actions for f in a.option_strings}
    assert not flags & {"--listen", "--host", "--bind", "--address"}, "a command can listen elsewhere"


def test_design_and_queue_talk_only_to_the_named_server(guarded_server, tmp_path, capsys):
    from photos import standing_person

    from hierafash_core.pose.openpose_json import tensor_to_pose_keypoint

    port = urllib.parse.urlparse(guarded_server.url).port
    pose = tmp_path / "pose.json"
    pose.write_text(json.dumps(tensor_to_pose_keypoint(standing_person(), (704, 512))))
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(tiny_graph(save=True)))
    net: list[str] = []
    switch = install(None, block=True, sink=net)
    try:
        design = main(["design", "--pose", str(pose), "--category", "Coat", "--edit", "A4=Lapel", "--width", "64",
                       "--height", "88", "--steps", "2", "--server", guarded_server.url, "--checkpoint", TINY_CKPT,
                       "--out", str(tmp_path / "design")])  # fmt: skip
        queue = main(["queue", str(workflow), "--server", guarded_server.url, "--out", str(tmp_path / "queue")])
    finally:
        switch["on"] = False
    assert (design, queue) == (0, 0), capsys.readouterr().err[-2000:]
    connects = [line.split()[1:4] for line in net if " socket.connect " in line]
    assert connects, "no connection seen: the guard is not watching"
    assert all(c[1:] == ["127.0.0.1", str(port)] for c in connects), connects
    assert not [line for line in net if "BLOCKED" in line], net
