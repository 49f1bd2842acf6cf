"""ConceptEncode, AttributeEncode and StagedKSampler inside the real ComfyUI (in-process, tiny checkpoint).

The switch-step proofs watch the UNet through a model wrapper on a clone: for every evaluation it
records the sigma, which caption the positive row carried, and whether a ControlNet acted.
"""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_CKPT

from hierafash_core.schedule import first_step_below, sigma_at

pytestmark = pytest.mark.comfy

UNSET = "(unset)"
SIZE = 8  # latent side: 64x64 pixels


@pytest.fixture(scope="module")
def kit(comfy):
    """The loaded tiny checkpoint, the node classes, a negative and an empty latent."""
    out = comfy.run({"ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": TINY_CKPT}}}, ["ckpt"])
    model, clip, vae = out["ckpt"]
    nodes = comfy.node_classes
    negative = nodes["CLIPTextEncode"]().encode(clip, "lowres")[0]
    latent = {"samples": torch.zeros(1, 4, SIZE, SIZE)}
    return {"model": model, "clip": clip, "nodes": nodes, "negative": negative, "latent": latent}


def concept_encode(kit, *fields, free_text="", allow=False, schedule="paper"):
    fields = list(fields) + [UNSET] * (5 - len(fields))
    out = kit["nodes"]["HieraFash_ConceptEncode"].execute(kit["clip"], *fields, free_text, allow, schedule)
    return out.args


def attribute_encode(kit, design, *fields, free_text="", allow=False):
    fields = list(fields) + [UNSET] * (5 - len(fields))
    return kit["nodes"]["HieraFash_AttributeEncode"].execute(kit["clip"], design, *fields, free_text, allow).args


def staged(
    kit, concepts, attributes=None, *, model=None, sampler="euler", scheduler="normal", steps=8, seed=7,
    schedule="from conditioning", spec="", denoise=1.0, control_net=None, pose=None, pose_stages="all stages",
):  # fmt: skip
    node = kit["nodes"]["HieraFash_StagedKSampler"]
    out = node.execute(
        model or kit["model"], concepts, kit["negative"], kit["latent"], seed, steps, 5.0, sampler, scheduler,
        denoise, schedule, spec, 1.0, pose_stages, attributes=attributes, control_net=control_net, pose_image=pose,
    )  # fmt: skip
    return out.args[0]["samples"], out.args[1]


def ksampler(kit, positive, *, negative=None, sampler="euler", scheduler="normal", steps=8, seed=7, model=None):
    node = kit["nodes"]["KSampler"]()
    latent = node.sample(
        model or kit["model"], seed, steps, 5.0, sampler, scheduler, positive, negative or kit["negative"],
        kit["latent"], 1.0,
    )[0]  # fmt: skip
    return latent["samples"]


def ksigmas(kit, sampler, scheduler, steps):
    import comfy.samplers

    m = kit["model"]
    return comfy.samplers.KSampler(m, steps, m.load_device, sampler, scheduler, 1.0, m.model_options).sigmas.tolist()


def recording(model, captions: dict[str, torch.Tensor]):
    """A clone of ``model`` that records ``(sigma, caption name, control active)`` per positive evaluation."""
    calls: list[tuple[float, str, bool]] = []

    def wrapper(apply_model, args):
        c, sigma, kinds = args["c"], args["timestep"], args["cond_or_uncond"]
        rows = c["c_crossattn"].chunk(len(kinds))
        for j, kind in enumerate(kinds):
            if kind == 0:  # a positive row: which caption is it?
                dist = {name: (rows[j].float() - emb.float()).abs().max().item() for name, emb in captions.items()}
                name = min(dist, key=dist.get)
                row_sigma = float(sigma.chunk(len(kinds))[j][0])
                calls.append((row_sigma, name if dist[name] < 1e-4 else "?", c.get("control") is not None))
        return apply_model(args["input"], sigma, **c)

    clone = model.clone()
    clone.set_model_unet_function_wrapper(wrapper)
    return clone, calls


@pytest.fixture(scope="module")
def design_pair(kit):
    """Concepts (caption A) and attributes whose later stages show the full caption B."""
    concepts, design, _ = concept_encode(kit, "Dress", "Elegant", "Party", schedule="two-stage:500")
    attributes, _, caption = attribute_encode(kit, design, "Long", "Short Sleeve", "Puffed", "V-Neck", "Draped")
    captions = {"A": concepts[0][0], "B": attributes[0][0]}
    return concepts, attributes, captions, caption


@pytest.fixture(scope="module")
def tiny_controlnet(kit):
    """A seeded ControlNet shaped like the tiny UNet, loaded through ComfyUI's own loader."""
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.ops

    cfg = {k: v for k, v in kit["model"].model.model_config.unet_config.items() if k not in ("out_channels", "dtype")}
    net = comfy.cldm.cldm.ControlNet(hint_channels=3, operations=comfy.ops.disable_weight_init, device="cpu", **cfg)
    gen = torch.Generator().manual_seed(11)
    sd = {"control_model." + k: torch.randn(v.shape, generator=gen) * 0.02 for k, v in net.state_dict().items()}
    return comfy.controlnet.load_controlnet_state_dict(sd)


POSE = torch.zeros(1, SIZE * 8, SIZE * 8, 3)
POSE[:, 10:50, 28:36, :] = 1.0  # a bar standing in for a skeleton


# -- outputs are ordinary, gap-free CONDITIONING ------------------------------------------------
def test_concept_and_attribute_outputs_are_windowed_and_cover_the_run(kit):
    from hierafash_core.conditioning import STAGE_KEY, uncovered_percents

    concepts, design, concept_caption = concept_encode(kit, "Dress", "Elegant", "Party", "Elongate Neck")
    assert concept_caption == "Dress, Elegant, Party, Elongate Neck"
    assert len(concepts) == 1 and concepts[0][0].shape == (1, 77, 768)
    assert (concepts[0][1]["start_percent"], concepts[0][1]["end_percent"]) == (0.0, pytest.approx(1 - 900 / 999))
    attributes, full, caption = attribute_encode(kit, design, "Long", "Short Sleeve", free_text=", , , V-Neck")
    assert caption == "Dress, Elegant, Party, Elongate Neck, Long Dress, Short Sleeve, V-Neck"
    assert [e[1][STAGE_KEY]["n_fields"] for e in attributes] == [6, 7, 8, 9, 10, 10]
    assert [e[1][STAGE_KEY]["caption"] for e in attributes][:2] == [
        "Dress, Elegant, Party, Elongate Neck, Long Dress",
        "Dress, Elegant, Party, Elongate Neck, Long Dress, Short Sleeve",
    ]
    assert uncovered_percents(concepts) != [] and uncovered_percents(concepts + attributes) == []
    assert full.prompt.get("collar") == "V-Neck"


def test_core_ksampler_honours_the_stage_windows(kit):
    concepts, design, _ = concept_encode(kit, "Dress", "Elegant", "Party")
    attributes, _, _ = attribute_encode(kit, design, "Long", "Short Sleeve", "Puffed", "V-Neck", "Draped")
    names = {e[1]["hierafash_stage"]["caption"]: e[0] for e in concepts + attributes}
    model, calls = recording(kit["model"], names)
    combined = kit["nodes"]["ConditioningCombine"]().combine(concepts, attributes)[0]
    ksampler(kit, combined, model=model, steps=8)
    assert len(calls) == 8 and all(name != "?" for _, name, _ in calls)  # one positive row per step
    assert calls[0][1] == "Dress, Elegant, Party"
    assert calls[-1][1].endswith("Draped Hem")
    assert len({name for _, name, _ in calls}) >= 4  # the caption grows over the run


# -- equality with KSampler ---------------------------------------------------------------------
@pytest.mark.parametrize(("sampler", "scheduler"), [("euler", "normal"), ("euler_ancestral", "karras")])
def test_same_caption_everywhere_equals_ksampler(kit, sampler, scheduler):
    concepts, design, caption = concept_encode(kit, "Dress", "Elegant", "Party")
    attributes, _, _ = attribute_encode(kit, design)  # no attribute: every stage shows the same caption
    plain = kit["nodes"]["CLIPTextEncode"]().encode(kit["clip"], caption)[0]
    ours, plan = staged(kit, concepts, attributes, sampler=sampler, scheduler=scheduler, steps=6)
    theirs = ksampler(kit, plain, sampler=sampler, scheduler=scheduler, steps=6)
    assert ours.shape == (1, 4, SIZE, SIZE)
    assert (ours - theirs).abs().max().item() <= 1e-5
    assert plan.startswith("schedule: windows from the conditioning (999-900:5, 899-800:6")


def test_pose_controlnet_in_all_stages_equals_core_controlnet_apply(kit, tiny_controlnet):
    concepts, design, caption = concept_encode(kit, "Dress", "Elegant")
    attributes, _, _ = attribute_encode(kit, design)
    plain = kit["nodes"]["CLIPTextEncode"]().encode(kit["clip"], caption)[0]
    apply = kit["nodes"]["ControlNetApplyAdvanced"]()
    pos, neg = apply.apply_controlnet(plain, kit["negative"], tiny_controlnet, POSE, 1.0, 0.0, 1.0)
    theirs = ksampler(kit, pos, negative=neg, steps=4)
    ours, _ = staged(kit, concepts, attributes, steps=4, control_net=tiny_controlnet, pose=POSE)
    without, _ = staged(kit, concepts, attributes, steps=4)
    assert (ours - theirs).abs().max().item() <= 1e-5
    assert (ours - without).abs().max().item() > 1e-3  # the ControlNet does act


# -- sigma schedules of the real host -----------------------------------------------------------
@pytest.mark.parametrize("scheduler", ["normal", "karras", "exponential"])
@pytest.mark.parametrize("denoise", [1.0, 0.6])
def test_host_schedules_match_the_core_denoise_rule(kit, scheduler, denoise):
    import comfy.samplers

    from hierafash_core.stage_plan import denoise_tail, full_steps_for_denoise

    m = kit["model"]
    ms = m.get_model_object("model_sampling")
    run = comfy.samplers.KSampler(m, 12, m.load_device, "euler", scheduler, denoise, m.model_options).sigmas.tolist()
    full = comfy.samplers.calculate_sigmas(ms, scheduler, full_steps_for_denoise(12, denoise)).tolist()
    assert len(run) == 13 and run[-1] == 0.0
    assert run == denoise_tail(full, 12)


def test_denoise_zero_returns_the_latent_unchanged_like_ksampler(kit, design_pair):
    concepts, attributes, _, _ = design_pair
    start = {"samples": torch.randn(1, 4, SIZE, SIZE, generator=torch.Generator().manual_seed(3))}
    node = kit["nodes"]["HieraFash_StagedKSampler"]
    out = node.execute(kit["model"], concepts, kit["negative"], start, 1, 8, 5.0, "euler", "normal", 0.0,
                       "from conditioning", "", 1.0, "all stages", attributes=attributes)  # fmt: skip
    assert torch.equal(out.args[0]["samples"], start["samples"])
    assert "denoise 0: no step runs" in out.args[1]
    assert out.args[0] is not start  # a new dict: the input latent is not mutated


# -- the switch step ----------------------------------------------------------------------------
def test_design_fact_half_range_boundary_lands_on_scheduler_dependent_steps(kit):
    ms = kit["model"].get_model_object("model_sampling")
    boundary = ms.percent_to_sigma(0.5)
    assert boundary == pytest.approx(sigma_at(499.5, ms.sigmas.double()), rel=1e-5)
    found = {s: first_step_below(ksigmas(kit, "euler", s, 20), boundary) for s in ("normal", "karras", "exponential")}
    assert found == {"normal": 10, "karras": 9, "exponential": 7}


@pytest.mark.parametrize(
    ("sampler", "scheduler", "steps", "schedule", "spec"),
    [
        ("euler", "normal", 10, "switch steps", "7"),
        ("euler_ancestral", "karras", 10, "from conditioning", ""),
        ("dpmpp_2m", "exponential", 10, "from conditioning", ""),
        ("heun", "karras", 6, "switch steps", "0:5, 4:10"),
    ],
)
def test_caption_switches_exactly_at_the_planned_step(kit, design_pair, sampler, scheduler, steps, schedule, spec):
    concepts, attributes, captions, _ = design_pair
    sigmas = ksigmas(kit, sampler, scheduler, steps)
    if schedule == "switch steps":
        k = int(spec.split(",")[-1].split(":")[0])
    else:  # two-stage:500: the first step whose sigma is below sigma(t=500)
        table = kit["model"].get_model_object("model_sampling").sigmas.double()
        k = first_step_below(sigmas, sigma_at(500, table))
    assert 0 < k < steps
    model, calls = recording(kit["model"], captions)
    _, plan = staged(kit, concepts, attributes, model=model, sampler=sampler, scheduler=scheduler, steps=steps,
                     schedule=schedule, spec=spec)  # fmt: skip
    assert calls and all(name in ("A", "B") for _, name, _ in calls)
    for sigma, name, _ in calls:  # steps before k (all their evaluations above sigma_k) show A; k onwards B
        assert name == ("B" if sigma <= sigmas[k] * (1 + 1e-6) else "A"), (sigma, name, sigmas[k])
    starts = {round(s, 5) for s, _, _ in calls if any(abs(s - x) <= 1e-6 * x for x in sigmas[:k])}
    assert len(starts) == k  # each of the k steps before the switch ran with caption A
    assert f"steps 0-{k - 1} (" in plan and f"steps {k}-{steps - 1} (" in plan


def test_pose_controlnet_acts_only_in_the_chosen_stages(kit, design_pair, tiny_controlnet):
    concepts, attributes, captions, _ = design_pair
    sigmas = ksigmas(kit, "euler", "normal", 6)
    model, calls = recording(kit["model"], captions)
    staged(kit, concepts, attributes, model=model, steps=6, schedule="switch steps", spec="0:5, 2:10",
           control_net=tiny_controlnet, pose=POSE, pose_stages="concept stages")  # fmt: skip
    assert [(round(s, 4), name, control) for s, name, control in calls] == [
        (round(sigmas[i], 4), "A" if i < 2 else "B", i < 2) for i in range(6)
    ]


def test_progress_bar_and_cancel(kit, design_pair):
    import comfy.model_management
    import comfy.utils

    concepts, attributes, _, _ = design_pair
    seen = []
    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append((value, total)))
    try:
        staged(kit, concepts, attributes, steps=3)
        assert seen == [(1, 3), (2, 3), (3, 3)]
        comfy.model_management.interrupt_current_processing(True)
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            staged(kit, concepts, attributes, steps=3)
    finally:
        comfy.model_management.interrupt_current_processing(False)
        comfy.utils.set_progress_bar_global_hook(previous)


# -- bad input ----------------------------------------------------------------------------------
def test_unknown_vocabulary_value_names_field_value_and_closest(kit):
    with pytest.raises(ValueError, match=r"free_text: style='Elegnt' is not in the vocabulary \(closest: Elegant"):
        concept_encode(kit, free_text="Dress, Elegnt")
    _, design, _ = concept_encode(kit, "Dress")
    with pytest.raises(ValueError, match=r"sleeve length='Short Sleve' .*closest: Short Sleeve.*allow free text"):
        attribute_encode(kit, design, free_text="Long, Short Sleve")
    concepts, _, caption = concept_encode(kit, free_text="Dress, Elegnt", allow=True)
    assert caption == "Dress, Elegnt"  # allowed free text is kept as typed


def test_empty_concept_prompt_is_refused(kit):
    with pytest.raises(ValueError, match=r"the concept prompt is empty .* pick at least a category"):
        concept_encode(kit, UNSET)


def test_schedule_gap_and_overlap_are_refused(kit):
    with pytest.raises(ValueError, match=r"schedule='999-900:5, 800-0:10': gap between windows .* start the second"):
        concept_encode(kit, "Dress", schedule="999-900:5, 800-0:10")
    with pytest.raises(ValueError, match=r"overlap; the second should start at t=899"):
        concept_encode(kit, "Dress", schedule="999-900:5, 950-0:10")


def test_concepts_without_attributes_leave_a_gap_that_is_named(kit):
    concepts, _, _ = concept_encode(kit, "Dress")
    with pytest.raises(ValueError, match=r"\(999-900:5\) do not cover t=999\.\.0 once.*Connect AttributeEncode"):
        staged(kit, concepts)


def test_switch_step_outside_the_run_is_refused(kit, design_pair):
    concepts, attributes, _, _ = design_pair
    with pytest.raises(ValueError, match=r"switch step 12 is outside the run of 8 steps \(steps 0\.\.7\)"):
        staged(kit, concepts, attributes, steps=8, schedule="switch steps", spec="12")
    with pytest.raises(ValueError, match="schedule_spec is empty; for 'switch steps' write e.g. '12'"):
        staged(kit, concepts, attributes, schedule="switch steps")


def test_pose_image_without_controlnet_is_refused(kit, design_pair):
    concepts, attributes, _, _ = design_pair
    with pytest.raises(ValueError, match="control_net: a pose_image is connected but no ControlNet"):
        staged(kit, concepts, attributes, pose=POSE)


def test_missing_checkpoint_gets_comfyuis_validation_message(comfy):
    from comfy_host import GraphFailed

    missing = "hierafash-missing.safetensors"
    graph = {"ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": missing}}}
    with pytest.raises(GraphFailed, match=r"Value not in list.*ckpt_name: 'hierafash-missing.safetensors' not in"):
        comfy.run(graph, outputs=["ckpt"])
