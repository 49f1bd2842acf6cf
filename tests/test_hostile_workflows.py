"""Broken and hostile workflow JSON sent to a real ComfyUI over HTTP: refused, never a crash, the server stays up.

The graph ``hierafash design`` queues (small: 64x88, 2 steps) is broken one way per case, drawn by
hypothesis: a link to a node that is not there, a node deleted under its links, a link to an output of
another type or to a slot that does not exist, an unknown or malformed node, a widget value of the
wrong type (NaN, lists, objects, text for numbers...), a required input left out, a cycle, or a body
that is not a graph at all. Each must be refused by ComfyUI's validation (HTTP 400 with the node's
error), or run to success, or fail in the executor with a clear error (a ValueError of the pack or a
graph error of ComfyUI); and after it the server must answer and its queue must drain. The number of
cases is printed at the end of the session (tests/hostile.py).
"""

from __future__ import annotations

import copy
import math
import sys
import time

import pytest
from comfy_host import REPO
from graphs import TINY_CKPT
from hostile import record
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hierafash_core.api_client import ComfyAPIError, ComfyClient, PromptFailed, PromptRejected, check_graph_shape

pytestmark = pytest.mark.comfy

sys.path.insert(0, str(REPO / "bench"))
from load_test import design_graph  # noqa: E402

SUITE = "hostile workflow JSON (over HTTP)"
WRONG_VALUES = [math.nan, math.inf, -math.inf, 1e308, -(2**70), [], {}, None, "abc", "", True, [1, 2, 3],
                {"__value__": [1]}, "\u202e\u0627\u0644", "x" * 100_000, ["1", 0]]  # fmt: skip
BAD_CLASSES = ["NoSuchNode", "", "hierafash_stagedksampler", "HieraFash_StagedKSampler ", "\U0001f457", None, 5, []]
BAD_NODES = [[], "x", None, 5, {"inputs": {}}, {"class_type": "KSampler"}, {"class_type": "KSampler", "inputs": []}]
BAD_BODIES = [[], "x", 5, {}, None, [["1", {"class_type": "KSampler"}]]]
KINDS = ["dangling link", "deleted node", "wrong type link", "bad slot", "unknown node", "wrong value",
         "missing input", "malformed node", "cycle", "not a graph"]  # fmt: skip
MUST_REFUSE = {"dangling link", "deleted node", "wrong type link", "bad slot", "unknown node"}
# Executor errors that are clear: the pack's ValueErrors and ComfyUI's own graph errors.
CLEAR = ("ValueError", "DependencyCycleError", "NodeInputError", "NodeNotFoundError")


def is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


@pytest.fixture(scope="module")
def http(guarded_server):
    client = ComfyClient(guarded_server.url, timeout=60)
    info = client.object_info()
    base = design_graph(5, TINY_CKPT, upto=2)  # pose, masks, the draft and one edit
    client.run(base, timeout=300)  # warm: later cases that run are served mostly from the cache
    return client, info, base


def input_type(info: dict, class_type: str, name: str) -> str:
    spec = info[class_type]["input"]
    entry = spec.get("required", {}).get(name) or spec.get("optional", {}).get(name)
    return entry[0] if isinstance(entry[0], str) else "COMBO"


def break_graph(data, info: dict, base: dict):
    """(kind, broken body) for one drawn case."""
    graph = copy.deepcopy(base)
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    ids = sorted(graph)
    links = sorted((n, k) for n in ids for k, v in graph[n]["inputs"].items() if is_link(v))
    widgets = sorted((n, k) for n in ids for k, v in graph[n]["inputs"].items() if not is_link(v))
    if kind == "dangling link":
        n, k = data.draw(st.sampled_from(links), label="input")
        graph[n]["inputs"][k] = [data.draw(st.sampled_from(["999", "", "\u0000", "-1"]), label="id"), 0]
    elif kind == "deleted node":
        del graph[data.draw(st.sampled_from(sorted({graph[n]["inputs"][k][0] for n, k in links})), label="node")]
    elif kind == "wrong type link":
        n, k = data.draw(st.sampled_from(links), label="input")
        want = input_type(info, graph[n]["class_type"], k)
        outputs = [(m, slot) for m in ids for slot, t in enumerate(info[graph[m]["class_type"]]["output"])
                   if t != want and want != "*" and t != "*" and m != n]  # fmt: skip
        if outputs:  # an input that takes any type ("*") has no wrong type: it gets a missing slot instead
            graph[n]["inputs"][k] = list(data.draw(st.sampled_from(outputs), label="source"))
        else:
            graph[n]["inputs"][k] = [graph[n]["inputs"][k][0], 99]
    elif kind == "bad slot":
        n, k = data.draw(st.sampled_from(links), label="input")
        graph[n]["inputs"][k] = [graph[n]["inputs"][k][0], data.draw(st.sampled_from([99, -1, 2**40]), label="slot")]
    elif kind == "unknown node":
        graph[data.draw(st.sampled_from(ids), label="node")]["class_type"] = data.draw(st.sampled_from(BAD_CLASSES))
    elif kind == "wrong value":
        n, k = data.draw(st.sampled_from(widgets), label="input")
        graph[n]["inputs"][k] = data.draw(st.sampled_from(WRONG_VALUES), label="value")
    elif kind == "missing input":
        n, k = data.draw(st.sampled_from(links + widgets), label="input")
        del graph[n]["inputs"][k]
    elif kind == "malformed node":
        graph[data.draw(st.sampled_from(ids), label="node")] = data.draw(st.sampled_from(BAD_NODES), label="node as")
    elif kind == "cycle":  # the draft's sampler fed by the last edit, which depends on it
        sampler = next(n for n in ids if graph[n]["class_type"] == "HieraFash_StagedKSampler")
        last = [n for n in ids if graph[n]["class_type"] == "HieraFash_GradientGuidedEdit"][-1]
        graph[sampler]["inputs"]["latent_image"] = [last, 0]
    else:
        return kind, data.draw(st.sampled_from(BAD_BODIES), label="body")
    return kind, graph


def outcome_of(client: ComfyClient, body, kind: str) -> str:
    """How the server answered (see the module doc); AssertionError for anything else.

    ComfyUI runs the outputs of a graph that validate and reports the others in ``node_errors`` (HTTP
    200): a broken branch is refused while the rest of the graph runs.
    """
    try:
        check_graph_shape(body)
    except ValueError as exc:  # shapes that stop ComfyUI's prompt worker, cycles it reports as a success
        shapes = ("malformed node", "not a graph", "unknown node")
        assert kind in shapes or "cycle" in str(exc) or "slots count from 0" in str(exc), f"{kind} refused: {exc}"
        return "refused by the pack's client"
    try:
        reply = client._request("/prompt", {"prompt": body, "client_id": client.client_id})
    except PromptRejected:
        return "refused by ComfyUI's validation"
    except ComfyAPIError as exc:
        raise AssertionError(f"the server answered {exc}") from None
    refused = bool(reply.get("node_errors"))
    assert refused or kind not in MUST_REFUSE, f"a {kind} was queued without a validation error"
    try:
        client.wait(reply["prompt_id"], timeout=120)
        return "refused by ComfyUI's validation, the valid outputs ran" if refused else "ran"
    except PromptFailed as exc:
        error = next((d for e, d in exc.history["status"]["messages"] if e == "execution_error"), {})
        name = str(error.get("exception_type", ""))
        assert name.endswith(CLEAR), f"failed with {name}: {str(error.get('exception_message'))[:300]}"
        return "failed with a clear error"


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
@given(data=st.data())
def test_broken_workflows_are_refused_and_the_server_stays_up(http, data):
    client, info, base = http
    kind, body = break_graph(data, info, base)
    try:
        outcome = outcome_of(client, body, kind)
    except AssertionError:
        record(SUITE, "failed")
        raise
    record(SUITE, outcome)
    assert client._request("/system_stats")["system"]["comfyui_version"], f"no answer after a {kind}"
    deadline = time.monotonic() + 60
    while client.queue_remaining():
        assert time.monotonic() < deadline, f"the queue did not drain after a {kind}"
        time.sleep(0.1)


def test_the_client_refuses_graphs_that_stop_comfyuis_worker_or_pass_as_a_silent_success():
    node = {"class_type": "VAEDecode", "inputs": {"samples": ["b", 0], "vae": ["c", 2]}}
    graph = {"a": node, "b": {"class_type": "KSampler", "inputs": {"latent_image": ["a", 0]}}}
    graph["c"] = {"class_type": "X"}
    with pytest.raises(ValueError, match=r"node 'c' \(X\): 'inputs' must be an object \(got NoneType\)"):
        check_graph_shape(graph)
    graph["c"]["inputs"] = {}
    with pytest.raises(ValueError, match=r"the links form a cycle \(a <- b <- a\)"):
        check_graph_shape(graph)
    graph["b"]["inputs"] = {}
    check_graph_shape(graph)
    graph["a"]["inputs"]["vae"] = ["c", -1]
    with pytest.raises(ValueError, match=r"node 'a' input 'vae': output slot -1 of node 'c'; slots count from 0"):
        check_graph_shape(graph)
    for body in ([], {}, "x", None):
        with pytest.raises(ValueError, match="expected an API-format workflow"):
            check_graph_shape(body)
