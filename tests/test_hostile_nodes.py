"""Property-based hostile input for every HieraFash node, inside the real ComfyUI executor (see hostile.py).

Every ``HieraFash_*`` node the host registered is found and fuzzed by the types its inputs declare,
so nodes added later are covered without a change here (they need only a baseline that runs: widget
defaults, or an entry in BASELINE). Cases are drawn by hypothesis with a fixed seed (derandomized),
so a run is repeatable; the number of cases and how each ended is printed at the end of the session.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch
from graphs import TINY_CKPT
from hostile import (
    NAN,
    SOURCE_TYPES,
    VALUES,
    WIDGET_TYPES,
    Runner,
    install_sources,
    judge,
    put,
    record,
    remove_sources,
    source_id,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image
from tiny_controlnet import build_tiny_controlnet

pytestmark = pytest.mark.comfy

W, H = 128, 176  # the photo and the masks; the draft is half that (8x11 latent cells)
PHOTO = "hostile_photo.png"
TINY_CN = "hierafash-tiny-cn.safetensors"
EXAMPLES = 20  # hypothesis examples per node and family

# Provider node of each linked type; every linked input of the node under test starts on one of these.
PROVIDERS = {
    "MODEL": ["ckpt", 0],
    "CLIP": ["ckpt", 1],
    "VAE": ["ckpt", 2],
    "CONDITIONING": ["both", 0],
    "LATENT": ["latent", 0],
    "IMAGE": ["photo", 0],
    "MASK": ["mask", 0],
    "POSE_KEYPOINT": ["pose", 0],
    "CONTROL_NET": ["cn", 0],
    "HIERAFASH_DESIGN": ["concepts", 1],
}


def keypoints_json() -> str:
    from photos import standing_person

    from hierafash_core.pose.openpose_json import tensor_to_pose_keypoint

    return json.dumps(tensor_to_pose_keypoint(standing_person(W / 512), (H, W)))


# Optional links a node's baseline needs connected (keypoints: no detection on a photo without knees).
LINKED = {"HieraFash_ParseMask": ("pose_keypoint",)}
# Per node: widget values that make its baseline cheap and runnable (everything else: the defaults).
BASELINE = {
    "HieraFash_PoseKeypointFromJSON": {"json_text": keypoints_json},
    "HieraFash_StagedKSampler": {"steps": 1},
    "HieraFash_GradientGuidedEdit": {"steps": 2},
    "HieraFash_ParseMask": {"clip_to_person": False},
}


def provider_graph() -> dict:
    concept = {"clip": ["ckpt", 1], "category": "Dress", "style": "Elegant", "occasion": "(unset)",
               "effect": "(unset)", "feeling": "(unset)", "free_text": "", "allow_free_text": False,
               "schedule": "paper"}  # fmt: skip
    attrs = {"clip": ["ckpt", 1], "design": ["concepts", 1], "clothing_length": "Long",
             "sleeve_length": "Short Sleeve", "sleeve_type": "(unset)", "collar": "(unset)", "hem": "(unset)",
             "free_text": "", "allow_free_text": False}  # fmt: skip
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": TINY_CKPT}},
        "concepts": {"class_type": "HieraFash_ConceptEncode", "inputs": concept},
        "attrs": {"class_type": "HieraFash_AttributeEncode", "inputs": attrs},
        "both": {"class_type": "ConditioningCombine",
                 "inputs": {"conditioning_1": ["concepts", 0], "conditioning_2": ["attrs", 0]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": W // 2, "height": H // 2, "batch_size": 1}},
        "photo": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
        "mask": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": W, "height": H}},
        "pose": {"class_type": "HieraFash_PoseKeypointFromJSON", "inputs": {"json_text": keypoints_json()}},
        "cn": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": TINY_CN}},
    }  # fmt: skip


class Fuzz:
    def __init__(self, comfy):
        self.comfy = comfy
        self.runner = Runner(comfy)
        self.classes = comfy.node_classes
        self.nodes = sorted(n for n in self.classes if n.startswith("HieraFash_"))

    def spec(self, node: str) -> dict[str, tuple]:
        types = self.classes[node].INPUT_TYPES()
        return {**types.get("required", {}), **types.get("optional", {})}

    def baseline(self, node: str, for_input: str | None = None) -> dict:
        """Inputs that run. Optional links are left unconnected (a ControlNet doubles a sampler's cost)
        unless the node needs them (LINKED) or ``for_input`` is one of them (then all are connected)."""
        types = self.classes[node].INPUT_TYPES()
        optional = set(types.get("optional", {}))
        wire_all = for_input in optional
        inputs = {}
        for name, info in self.spec(node).items():
            kind, opts = info[0], (info[1] if len(info) > 1 else {})
            if kind in PROVIDERS:
                if name in optional and not wire_all and name not in LINKED.get(node, ()):
                    continue
                inputs[name] = list(PROVIDERS[kind])
            elif isinstance(kind, list) or kind == "COMBO":
                options = kind if isinstance(kind, list) else opts["options"]
                inputs[name] = opts.get("default", options[0])
            elif kind in WIDGET_TYPES:
                inputs[name] = opts.get("default", {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[kind])
            else:
                raise AssertionError(f"{node}.{name}: no provider for the type {kind}; add one to PROVIDERS")
        for name, value in BASELINE.get(node, {}).items():
            inputs[name] = value() if callable(value) else value
        if node not in BASELINE and "steps" in inputs:
            inputs["steps"] = 2
        return inputs

    def graph(self, node: str, inputs: dict) -> dict:
        graph = provider_graph()
        graph["target"] = {"class_type": node, "inputs": inputs}
        return graph

    def output_types(self, node: str) -> tuple:
        return tuple(self.classes[node].RETURN_TYPES)


@pytest.fixture(scope="module")
def fuzz(comfy, comfy_base, tiny_checkpoint, mini_test_designer, tmp_path_factory):
    photo = np.full((H, W, 3), 255, dtype=np.uint8)
    import skimage.data

    photo[:W] = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((W, W)))
    Image.fromarray(photo).save(comfy_base / "input" / PHOTO)
    build_tiny_controlnet(tiny_checkpoint, comfy_base / "models" / "controlnet" / TINY_CN)
    # MiniDesignerLoader's "built-in" choice reads $HIERAFASH_MODELS/mini-designer: the test designer, never
    # the real build folder (it may be half written by a running build)
    models = tmp_path_factory.mktemp("hostile_models")
    (models / "mini-designer").symlink_to(mini_test_designer[1].folder)
    saved = os.environ.get("HIERAFASH_MODELS")
    os.environ["HIERAFASH_MODELS"] = str(models)
    install_sources(comfy.node_classes)
    logging.disable(logging.ERROR)  # ComfyUI logs every refused case with its traceback
    try:
        yield Fuzz(comfy)
    finally:
        logging.disable(logging.NOTSET)
        remove_sources(comfy.node_classes)
        if saved is None:
            os.environ.pop("HIERAFASH_MODELS", None)
        else:
            os.environ["HIERAFASH_MODELS"] = saved


# -- hostile values by declared type -------------------------------------------------------------------
UNICODE = ["\u202e\u0627\u0644\u202c", "\u200d\u200b\ufeff", "\ud800", "\udfff", "\x00\x07\x1b[31m", "\U0001f457" * 50,
           "e\u0301" * 30, "\uffff\ufffe", "Dress\u00a0, Elegant", "\u0394\u0440\u0435\u0441\u0441"]  # fmt: skip
JUNK = ["", " ", "null", "[]", "{}", '{"people": NaN}', "[" * 5000, "9" * 5000, "x" * 100_000, "nan", "-1", "1e999"]
NOT_LINKS = [5, -1, 2.5, "text", True, {"a": 1}, {"__value__": 3}]
BAD_LINKS = [["nope", 0], ["ckpt", 99], ["ckpt", -1], [], ["ckpt"], ["ckpt", 0, 0], [None, 0], [["ckpt", 0], 0]]


def number_values(kind: str, opts: dict, name: str):
    lo, hi = opts.get("min"), opts.get("max")
    cheap_hi = hi if hi is not None and (lo is None or hi - lo <= 8) else (lo or 0) + 3  # steps stay cheap
    if kind == "INT":
        good = st.integers(lo if lo is not None else -5, cheap_hi)
    else:
        good = st.floats(lo if lo is not None else -5.0, hi if hi is not None else 5.0, allow_nan=False)
    wrong = [NAN, float("inf"), float("-inf"), "nan", "inf", "-Infinity", "1e999", "abc", "", None, [1], {"x": 1},
             -(2**70), 2**70, 1e308, -1e308]  # fmt: skip
    if lo is not None:
        wrong += [lo - 1, lo - 0.5] if kind == "FLOAT" else [lo - 1]
    if hi is not None:
        wrong += [hi + 1, hi + 1e-6] if kind == "FLOAT" else [hi + 1]
    either = [True, "3", {"__value__": lo if lo is not None else 0}]  # ComfyUI converts these
    if kind == "INT":
        wrong.append("2.5")
        either.append(2.5)  # ComfyUI's int() truncates it to 2
    return st.one_of(
        good.map(lambda v: (v, False)),
        st.sampled_from(wrong).map(lambda v: (v, True)),
        st.sampled_from(either).map(lambda v: (v, False)),
    )


def combo_values(options: list):
    near = [str(o) + " " for o in options[:3]] + [str(o).upper() for o in options[:3] if str(o).upper() != o]
    paths = [f"../{options[0]}", f"/tmp/{options[0]}", "..\\..\\x.safetensors", "C:/x.safetensors", "x.ckpt", "x.pt"]
    wrong = ["", "nope", *near, *paths, *UNICODE[:4], 5, None, ["x"], {"v": 1}]
    return st.one_of(
        st.sampled_from(options).map(lambda v: (v, False)),
        st.sampled_from([w for w in wrong if w not in options]).map(lambda v: (v, True)),
    )


def string_values():
    text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
    return st.one_of(text, st.sampled_from(UNICODE + JUNK), st.sampled_from([5, 2.5, None, True])).map(
        lambda v: (v, False)
    )


def boolean_values():
    return st.sampled_from([True, False, "false", "true", 0, 1, None, "", "no"]).map(lambda v: (v, False))


def widget_values(info: tuple, name: str):
    kind, opts = info[0], (info[1] if len(info) > 1 else {})
    if isinstance(kind, list) or kind == "COMBO":
        return combo_values(kind if isinstance(kind, list) else opts["options"])
    if kind in ("INT", "FLOAT"):
        return number_values(kind, opts, name)
    if kind == "STRING":
        return string_values()
    return boolean_values()


# Objects that can arrive on a typed link from a broken or unusual upstream node: (value, must refuse).
def image_objects():
    base = torch.rand(1, H, W, 3)
    return [
        (base.clone().fill_(NAN), True), (base * 255, True), ((base * 255).to(torch.uint8), True),
        (base.to(torch.complex64), True), (base.long(), True), (torch.zeros(0, H, W, 3), True),
        (torch.zeros(1, 0, W, 3), True), (base[..., :2], True), (torch.rand(1, H, W, 5), True),
        (torch.rand(H), True), (torch.rand(1, 1, H, W, 3), True), ("text", True), (5, True),
        (base[..., :1], False), (torch.rand(1, H, W, 4), False), (base[0], False), (base.half(), False),
        (base > 0.5, False), (base.repeat(2, 1, 1, 1), False), (torch.rand(1, 1, 1, 3), False),
        (base * 1.05, False), (torch.rand(1, 64, 64, 3), False), (torch.rand(1, 700, 500, 3), False),
    ]  # fmt: skip


def mask_objects():
    base = (torch.rand(1, H, W) > 0.5).float()
    return [
        (base.clone().fill_(NAN), True), (base * 255, True), (base.to(torch.complex64), True),
        (base.long(), True), (torch.zeros(0, H, W), True), (torch.rand(1, H, W, 3), True),
        (torch.rand(H), True), (torch.rand(1, 1, 1, H, W), True), ("text", True), (5, True),
        (base[0], False), (base[:, None], False), (base.bool(), False), (base.to(torch.uint8), False),
        (base.half(), False), (base.repeat(3, 1, 1), False), (torch.zeros(1, H, W), False),
        (torch.rand(1, 64, 64), False), (torch.ones(1, 1, 1), False),
    ]  # fmt: skip


def latent_objects():
    z = torch.randn(1, 4, H // 16, W // 16)
    return [
        ({"samples": z.clone().fill_(NAN)}, True), ({}, True), ({"samples": "x"}, True), (z, True),
        ({"samples": z[0]}, True), ({"samples": torch.zeros(0, 4, 11, 8)}, True), ({"samples": z.long()}, True),
        ({"samples": z, "noise_mask": torch.full((1, H, W), NAN)}, True),
        ({"samples": z, "batch_index": [10**9]}, True), ({"samples": z, "batch_index": "x"}, True),
        ({"samples": z[None]}, True), ("text", True),
        ({"samples": torch.randn(1, 16, 11, 8)}, False), ({"samples": z.half()}, False),
        ({"samples": z.repeat(2, 1, 1, 1)}, False), ({"samples": torch.randn(1, 4, 1, 1)}, False),
        ({"samples": z, "noise_mask": torch.ones(1, 32, 32)}, False), ({"samples": z, "batch_index": [3]}, False),
        ({"samples": z, "noise_mask": torch.ones(5)}, False),
    ]  # fmt: skip


def conditioning_objects():
    e = torch.randn(1, 77, 768)
    return [
        ([[e.clone().fill_(NAN), {}]], True), ([["x", {}]], True), ([[e, "opts"]], True), ("text", True),
        (5, True), ([[e[0], {}]], True), ([[e, {"start_percent": NAN}]], True), ([[torch.randn(1, 0, 768), {}]], True),
        ([e], True), ([[e.long(), {}]], True),
        ([], False), ([[e, {}]], False), ([[torch.randn(1, 77, 1024), {}]], False), ([[e.repeat(2, 1, 1), {}]], False),
        ([[e, {"start_percent": 0.5, "end_percent": 0.2}]], False), ([[e, {"pooled_output": "x"}]], False),
        ([[torch.randn(1, 300, 768), {}]], False),
    ]  # fmt: skip


def pose_objects():
    good = json.loads(keypoints_json())
    person = good[0]["people"][0]["pose_keypoints_2d"]
    frame = lambda pts, **kw: [{"people": [{"pose_keypoints_2d": pts}], "canvas_width": W, "canvas_height": H, **kw}]  # noqa: E731
    return [
        (5, True), ("garbage", True), ([], True), ([{"people": "x"}], True), (frame([NAN] * 54), True),
        (frame("abc"), True), (frame(person[:7]), True), (frame(person, canvas_width=float("inf")), True),
        ([{"people": []}], True), (frame(person, canvas_width=-3), True), ([[1, 2]], True),
        (good[0], False), (json.dumps(good), False), (good * 3, False), (frame([v / 1000 for v in person]), False),
        (frame([v * 1e30 for v in person]), False), (frame(person + [1.0] * 21), False),
        (frame([0.0] * 54), False), (frame(person, canvas_width=1, canvas_height=10**9), False),
    ]  # fmt: skip


TENSOR_OBJECTS = {
    "IMAGE": image_objects,
    "MASK": mask_objects,
    "LATENT": latent_objects,
    "CONDITIONING": conditioning_objects,
    "POSE_KEYPOINT": pose_objects,
}


def link_values(kind: str):
    wrong_type = [list(link) for t, link in PROVIDERS.items() if t != kind and t not in ("CLIP", "VAE")]
    values = [(link, True) for link in wrong_type + BAD_LINKS] + [(v, True) for v in NOT_LINKS]
    return st.sampled_from(values)


OUTCOMES = {"refused": "refused by ComfyUI", "error": "refused by the pack", "ran": "ran, outputs sound"}


def check(fuzz: Fuzz, node: str, inputs: dict, name: str, must_refuse: bool, suite: str, extra=None) -> None:
    outcome = fuzz.runner.run({**fuzz.graph(node, inputs), **(extra or {})}, "target")
    problem = judge(outcome, name, must_refuse, fuzz.output_types(node))
    record(suite, "failed" if problem else OUTCOMES[outcome.kind])
    shown = VALUES.get(((extra or {}).get("source") or {}).get("inputs", {}).get("key"), inputs.get(name))
    message = f"{node}.{name} = {str(shown)[:160]!r}: {problem}"
    if problem and os.environ.get("HOSTILE_SOFT"):  # exploring: list every failure instead of stopping at one
        print("FAIL", message)
        return
    assert problem is None, message


SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the failing value is already a plain one
    suppress_health_check=list(HealthCheck),
)


def test_every_node_has_a_baseline_that_runs(fuzz):
    assert {"HieraFash_ConceptEncode", "HieraFash_StagedKSampler", "HieraFash_GradientGuidedEdit",
            "HieraFash_ParseMask", "HieraFash_PoseDetect",
            "HieraFash_MiniDesignerLoader"} <= set(fuzz.nodes)  # fmt: skip
    for node in fuzz.nodes:
        optional = list(fuzz.classes[node].INPUT_TYPES().get("optional", {}))
        for inputs in (fuzz.baseline(node), fuzz.baseline(node, optional[0] if optional else None)):
            outcome = fuzz.runner.run(fuzz.graph(node, inputs), "target")
            assert outcome.kind == "ran", f"{node}: the baseline does not run ({outcome.message}); see BASELINE"
            assert judge(outcome, "", False, fuzz.output_types(node)) is None


def widget_case(fuzz: Fuzz, node: str, widgets: dict):
    @SETTINGS
    @given(data=st.data())
    def case(data):
        name = data.draw(st.sampled_from(sorted(widgets)), label="input")
        value, must_refuse = data.draw(widget_values(widgets[name], name), label="value")
        inputs = {**fuzz.baseline(node), name: value}
        check(fuzz, node, inputs, name, must_refuse, "hostile widget values (in-process)")

    return case


def link_case(fuzz: Fuzz, node: str, links: dict):
    @SETTINGS
    @given(data=st.data())
    def case(data):
        name = data.draw(st.sampled_from(sorted(links)), label="input")
        value, must_refuse = data.draw(link_values(links[name]), label="value")
        inputs = {**fuzz.baseline(node, name), name: value}
        check(fuzz, node, inputs, name, must_refuse, "hostile links in workflow JSON (in-process)")

    return case


def test_hostile_widget_values(fuzz):
    for node in fuzz.nodes:
        widgets = {n: i for n, i in fuzz.spec(node).items() if i[0] not in PROVIDERS}
        if widgets:
            widget_case(fuzz, node, widgets)()


def test_hostile_links(fuzz):
    for node in fuzz.nodes:
        links = {n: i[0] for n, i in fuzz.spec(node).items() if i[0] in PROVIDERS}
        if links:
            link_case(fuzz, node, links)()


def test_hostile_objects_on_links(fuzz):
    """Every listed object on every linked input of its type: a short list, so all of it, not a sample.

    Objects that may run are sent to the node's first input of each type only (a run costs a sampler
    pass); those that must be refused, cheap, to every input.
    """
    for node in fuzz.nodes:
        first: set[str] = set()
        for name, info in fuzz.spec(node).items():
            if info[0] not in SOURCE_TYPES:
                continue
            may_run = info[0] not in first
            first.add(info[0])
            for value, must_refuse in TENSOR_OBJECTS[info[0]]():
                if not (must_refuse or may_run):
                    continue
                source = {"class_type": source_id(info[0]), "inputs": {"key": put(value)}}
                inputs = {**fuzz.baseline(node, name), name: ["source", 0]}
                suite = "hostile tensors and objects on links (in-process)"
                check(fuzz, node, inputs, name, must_refuse, suite, {"source": source})
