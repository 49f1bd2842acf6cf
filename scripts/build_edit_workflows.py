"""Write the editing example workflows: the UI file users open, and its API twin the tests run.

    .venv/bin/python scripts/build_edit_workflows.py

One description of each graph gives both files, so they cannot drift apart: the UI workflow
(``workflows/*.json``, ComfyUI's litegraph format, a 512x704 design as in the paper) and its API
twin (``tests/workflows/*_api.json``, the same values; the tests shrink sizes and steps and swap
in the seeded test models). Widget values are written in each node's widget order; keep those
orders stable once shipped. The whole design workflow (workflows/hierafash_design.json) is written by
scripts/build_design_workflow.py from the graph builder that `hierafash design` runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
NEGATIVE = "lowres, blurry, deformed body, extra limbs, cropped, watermark, text"

# Sockets and widgets of the node types used: inputs (name, type), outputs (name, type), widget names.
# "control_after_generate" (after a seed) is a UI-only widget.
UI_ONLY = ("control_after_generate", "upload")
SPECS: dict[str, dict] = {
    "CheckpointLoaderSimple": {
        "inputs": [],
        "outputs": [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")],
        "widgets": ["ckpt_name"],
    },
    "CLIPTextEncode": {"inputs": [("clip", "CLIP")], "outputs": [("CONDITIONING", "CONDITIONING")],
                       "widgets": ["text"]},
    "EmptyLatentImage": {"inputs": [], "outputs": [("LATENT", "LATENT")],
                         "widgets": ["width", "height", "batch_size"]},
    "KSampler": {
        "inputs": [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                   ("latent_image", "LATENT")],
        "outputs": [("LATENT", "LATENT")],
        "widgets": ["seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler", "denoise"],
    },
    "SolidMask": {"inputs": [], "outputs": [("MASK", "MASK")], "widgets": ["value", "width", "height"]},
    "MaskComposite": {
        "inputs": [("destination", "MASK"), ("source", "MASK")],
        "outputs": [("MASK", "MASK")],
        "widgets": ["x", "y", "operation"],
    },
    "FeatherMask": {"inputs": [("mask", "MASK")], "outputs": [("MASK", "MASK")],
                    "widgets": ["left", "top", "right", "bottom"]},
    "VAEDecode": {"inputs": [("samples", "LATENT"), ("vae", "VAE")], "outputs": [("IMAGE", "IMAGE")], "widgets": []},
    "SaveImage": {"inputs": [("images", "IMAGE")], "outputs": [], "widgets": ["filename_prefix"]},
    "SaveLatent": {"inputs": [("samples", "LATENT")], "outputs": [], "widgets": ["filename_prefix"]},
    "ConditioningCombine": {
        "inputs": [("conditioning_1", "CONDITIONING"), ("conditioning_2", "CONDITIONING")],
        "outputs": [("CONDITIONING", "CONDITIONING")],
        "widgets": [],
    },
    "LoadImage": {"inputs": [], "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")], "widgets": ["image", "upload"]},
    "ControlNetLoader": {"inputs": [], "outputs": [("CONTROL_NET", "CONTROL_NET")], "widgets": ["control_net_name"]},
    "PreviewImage": {"inputs": [("images", "IMAGE")], "outputs": [], "widgets": []},
    "HieraFash_ConceptEncode": {
        "inputs": [("clip", "CLIP")],
        "outputs": [("concepts", "CONDITIONING"), ("design", "HIERAFASH_DESIGN"), ("caption", "STRING")],
        "widgets": ["category", "style", "occasion", "effect", "feeling", "free_text", "allow_free_text",
                    "schedule"],
    },
    "HieraFash_AttributeEncode": {
        "inputs": [("clip", "CLIP"), ("design", "HIERAFASH_DESIGN")],
        "outputs": [("attributes", "CONDITIONING"), ("design", "HIERAFASH_DESIGN"), ("caption", "STRING")],
        "widgets": ["clothing_length", "sleeve_length", "sleeve_type", "collar", "hem", "free_text",
                    "allow_free_text"],
    },
    "HieraFash_StagedKSampler": {
        "inputs": [("model", "MODEL"), ("concepts", "CONDITIONING"), ("negative", "CONDITIONING"),
                   ("latent_image", "LATENT"), ("attributes", "CONDITIONING"), ("control_net", "CONTROL_NET"),
                   ("pose_image", "IMAGE")],
        "outputs": [("latent", "LATENT"), ("plan", "STRING")],
        "widgets": ["seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler", "denoise",
                    "schedule", "schedule_spec", "pose_strength", "pose_stages"],
    },
    "HieraFash_PoseDetect": {
        "inputs": [("image", "IMAGE")],
        "outputs": [("pose_keypoint", "POSE_KEYPOINT"), ("pose_image", "IMAGE"), ("person_mask", "MASK")],
        "widgets": ["max_people", "model"],
    },
    "HieraFash_ParseMask": {
        "inputs": [("image", "IMAGE"), ("pose_keypoint", "POSE_KEYPOINT"), ("refine_mask", "MASK")],
        "outputs": [("mask", "MASK"), ("preview", "IMAGE"), ("pose_keypoint", "POSE_KEYPOINT")],
        "widgets": ["attribute", "category", "grow", "feather", "person_index", "clip_to_person", "person_margin",
                    "refine_mode", "refine_margin", "reach"],
    },
    "HieraFash_MiniDesignerLoader": {
        "inputs": [],
        "outputs": [("model", "MODEL"), ("clip", "CLIP"), ("vae", "VAE"), ("pose_control_net", "CONTROL_NET")],
        "widgets": ["checkpoint", "pose_controlnet"],
    },
    "HieraFash_PoseKeypointFromJSON": {"inputs": [], "outputs": [("pose_keypoint", "POSE_KEYPOINT")],
                                       "widgets": ["json_text"]},
    "HieraFash_GradientGuidedEdit": {
        "inputs": [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                   ("source", "LATENT"), ("mask", "MASK"), ("control_net", "CONTROL_NET"), ("pose_image", "IMAGE"),
                   ("init", "LATENT")],
        "outputs": [("edited", "LATENT")],
        "widgets": ["attribute", "start_timestep", "start_step", "steps", "cfg", "sampler", "scheduler", "seed",
                    "control_after_generate", "mode", "guidance_weight", "guidance_start", "guidance_end",
                    "gradient_path", "guidance_iterations", "start_method", "inversion_refinements",
                    "control_strength", "resample", "resample_share", "latent_mask"],
    },
    "HieraFash_SleeveHint": {
        "inputs": [("image", "IMAGE"), ("pose_keypoint", "POSE_KEYPOINT")],
        "outputs": [("hint", "IMAGE")],
        "widgets": ["sleeve_length", "person_index", "outline"],
    },
    "VAEEncode": {"inputs": [("pixels", "IMAGE"), ("vae", "VAE")], "outputs": [("LATENT", "LATENT")], "widgets": []},
    "ImageCompositeMasked": {
        "inputs": [("destination", "IMAGE"), ("source", "IMAGE"), ("mask", "MASK")],
        "outputs": [("IMAGE", "IMAGE")],
        "widgets": ["x", "y", "resize_source"],
    },
}  # fmt: skip


@dataclass
class Node:
    id: int
    type: str
    title: str
    widgets: dict
    links: dict = field(default_factory=dict)  # input name -> (source node id, output slot)
    pos: tuple[int, int] = (0, 0)


def edit_defaults(**values) -> dict:
    base = {
        "attribute": "A2 sleeve length (t=831)",
        "start_timestep": 751,
        "start_step": 8,
        "steps": 30,
        "cfg": 7.0,
        "sampler": "euler",
        "scheduler": "normal",
        "seed": 0,
        "control_after_generate": "fixed",
        "mode": "both",
        "guidance_weight": 1.0,
        "guidance_start": 0.0,
        "guidance_end": 1.0,
        "gradient_path": "clean estimate",
        "guidance_iterations": 1,
        "start_method": "noise",
        "inversion_refinements": 0,
        "control_strength": 1.0,
        "resample": 1,
        "resample_share": 0.5,
        "latent_mask": "average",
    }
    base.update(values)
    return base


def rect_mask(
    nodes: list[Node],
    first_id: int,
    canvas: int,
    boxes: list[tuple[int, int, int, int]],
    feather: int,
    column: int,
    row: int,
    title: str,
) -> int:
    """SolidMask squares composited onto ``canvas`` and feathered; returns the FeatherMask's id."""
    nid, previous = first_id, (canvas, 0)
    for k, (x, y, w, h) in enumerate(boxes):
        nodes.append(
            Node(
                nid,
                "SolidMask",
                f"{title}: box {k + 1}",
                {"value": 1.0, "width": w, "height": h},
                pos=(column, row + 120 * k),
            )
        )
        nodes.append(
            Node(
                nid + 1,
                "MaskComposite",
                f"{title}: place box {k + 1}",
                {"x": x, "y": y, "operation": "add"},
                {"destination": previous, "source": (nid, 0)},
                pos=(column + 260, row + 120 * k),
            )
        )
        previous = (nid + 1, 0)
        nid += 2
    nodes.append(
        Node(
            nid,
            "FeatherMask",
            f"{title}: mask",
            {"left": feather, "top": feather, "right": feather, "bottom": feather},
            {"mask": previous},
            pos=(column + 520, row),
        )
    )
    return nid  # fmt: skip


def edit_chain() -> list[Node]:
    """A 512x704 draft (core KSampler) then three chained edits (sleeve length, collar, hem), masks from core nodes."""
    w, h = 512, 704
    caption = "Dress, Elegant, Party, Elongate Neck, Sense of Agility and Elegance"
    nodes = [
        Node(1, "CheckpointLoaderSimple", "Checkpoint", {"ckpt_name": CHECKPOINT}, pos=(0, 0)),
        Node(2, "CLIPTextEncode", "Draft: concepts", {"text": caption}, {"clip": (1, 1)}, pos=(360, 0)),
        Node(3, "CLIPTextEncode", "Negative", {"text": NEGATIVE}, {"clip": (1, 1)}, pos=(360, 260)),
        Node(4, "EmptyLatentImage", "Canvas", {"width": w, "height": h, "batch_size": 1}, pos=(360, 520)),
        Node(5, "KSampler", "Draft", {"seed": 1, "control_after_generate": "fixed", "steps": 30, "cfg": 7.0,
                                      "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0},
             {"model": (1, 0), "positive": (2, 0), "negative": (3, 0), "latent_image": (4, 0)}, pos=(800, 0)),
        Node(6, "SolidMask", "Empty canvas mask", {"value": 0.0, "width": w, "height": h}, pos=(0, 700)),
    ]  # fmt: skip
    # Regions on the 512x704 design: arms (sleeves), around the neck (collar), the skirt's lower edge (hem).
    masks = {
        "sleeves": [(56, 152, 112, 272), (344, 152, 112, 272)],
        "collar": [(200, 88, 112, 104)],
        "hem": [(112, 520, 288, 160)],
    }
    edits = [
        ("sleeves", "Edit A2: sleeve length", "A2 sleeve length (t=831)", "Long Dress, Long Sleeve"),
        ("collar", "Edit A4: collar", "A4 collar (t=671)", "Long Dress, Long Sleeve, Regular Sleeve, V-Neck"),
        ("hem", "Edit A5: hem", "A5 hem (t=591)", "Long Dress, Long Sleeve, Regular Sleeve, V-Neck, Draped Hem"),
    ]
    source, row = (5, 0), 700
    for k, (region, title, attribute, fields) in enumerate(edits):
        base_id = 20 + 20 * k
        mask_id = rect_mask(nodes, base_id, 6, masks[region], 16, 0, row, title)
        text_id, edit_id = base_id + 10, base_id + 11
        nodes.append(
            Node(text_id, "CLIPTextEncode", f"{title}: prompt", {"text": f"{caption}, {fields}"}, {"clip": (1, 1)},
                 pos=(800, row))
        )  # fmt: skip
        nodes.append(Node(edit_id, "HieraFash_GradientGuidedEdit", title,
                          edit_defaults(attribute=attribute, seed=10 + k),
                          {"model": (1, 0), "positive": (text_id, 0), "negative": (3, 0), "source": source,
                           "mask": (mask_id, 0)}, pos=(1240, row)))  # fmt: skip
        source, row = (edit_id, 0), row + 420
    nodes += [
        Node(90, "VAEDecode", "Decode draft", {}, {"samples": (5, 0), "vae": (1, 2)}, pos=(1700, 0)),
        Node(91, "SaveImage", "Save draft", {"filename_prefix": "HieraFash/edit_chain_draft"}, {"images": (90, 0)},
             pos=(1950, 0)),
        Node(92, "VAEDecode", "Decode final", {}, {"samples": source, "vae": (1, 2)}, pos=(1700, 400)),
        Node(93, "SaveImage", "Save final", {"filename_prefix": "HieraFash/edit_chain_final"}, {"images": (92, 0)},
             pos=(1950, 400)),
    ]  # fmt: skip
    return nodes


MINI_POSE_IMAGE = "hierafash_mini_pose.png"


def mini_pose() -> tuple[str, object]:
    """The front pose of the synthetic pose bank at 128x192: OpenPose JSON text and its drawing (RGB uint8)."""
    import numpy as np

    from hierafash_core.pose.render import render_openpose_hwc
    from hierafash_core.synth.pose_bank import POSES_BY_NAME, openpose_json, place

    kp = place(POSES_BY_NAME["front"].keypoints, (128, 192))
    return json.dumps(openpose_json(kp, (128, 192))), np.ascontiguousarray(render_openpose_hwc(kp, 128, 192))


def mini_design() -> list[Node]:
    """The design process on the built-in mini designer: its loader gives model, CLIP, VAE and pose ControlNet.

    The pose comes as OpenPose JSON (for ParseMask) and its drawing (for the ControlNet), written
    next to the workflow as ``hierafash_mini_pose.png``: copy it into ComfyUI's input folder.
    """
    pose_json, _ = mini_pose()
    fields = {"clothing_length": "Knee-length", "sleeve_length": "Short Sleeve", "sleeve_type": "Puffed",
              "collar": "Round", "hem": "Flat", "free_text": "", "allow_free_text": False}  # fmt: skip
    nodes = [
        Node(1, "HieraFash_MiniDesignerLoader", "Mini designer", {"checkpoint": "built-in",
             "pose_controlnet": "built-in"}, pos=(0, 0)),
        Node(2, "HieraFash_ConceptEncode", "Concepts (ideation)",
             {"category": "Dress", "style": "Elegant", "occasion": "Party", "effect": "Tall",
              "feeling": "Crisp Feeling", "free_text": "", "allow_free_text": False, "schedule": "paper"},
             {"clip": (1, 1)}, pos=(380, 0)),
        Node(3, "HieraFash_AttributeEncode", "Draft attributes", dict(fields), {"clip": (1, 1), "design": (2, 1)},
             pos=(380, 380)),
        Node(4, "CLIPTextEncode", "Negative (empty, as trained)", {"text": ""}, {"clip": (1, 1)}, pos=(380, 720)),
        Node(5, "EmptyLatentImage", "Canvas 128x192", {"width": 128, "height": 192, "batch_size": 1}, pos=(380, 960)),
        Node(6, "LoadImage", "Pose drawing (hierafash_mini_pose.png)", {"image": MINI_POSE_IMAGE, "upload": "image"},
             pos=(0, 300)),
        Node(7, "HieraFash_PoseKeypointFromJSON", "Pose keypoints", {"json_text": pose_json}, pos=(0, 700)),
        Node(9, "HieraFash_StagedKSampler", "Draft",
             {"seed": 7, "control_after_generate": "fixed", "steps": 20, "cfg": 4.0, "sampler_name": "euler",
              "scheduler": "normal", "denoise": 1.0, "schedule": "from conditioning", "schedule_spec": "",
              "pose_strength": 1.0, "pose_stages": "all stages"},
             {"model": (1, 0), "concepts": (2, 0), "negative": (4, 0), "latent_image": (5, 0),
              "attributes": (3, 0), "control_net": (1, 3), "pose_image": (6, 0)}, pos=(820, 0)),
        Node(10, "VAEDecode", "Decode draft", {}, {"samples": (9, 0), "vae": (1, 2)}, pos=(1260, 0)),
        Node(11, "SaveImage", "Save draft", {"filename_prefix": "HieraFash/mini_draft"}, {"images": (10, 0)},
             pos=(1500, 0)),
    ]  # fmt: skip
    edits = [
        ("sleeve_length", "Long Sleeve", "Edit A2: sleeve length", "A2 sleeve length (t=831)"),
        ("clothing_length", "Long", "Edit A1: clothing length", "A1 clothing length (t=911)"),
        ("collar", "V-Neck", "Edit A4: collar", "A4 collar (t=671)"),
    ]
    # Each edit as `hierafash design` runs it on the mini designer (MINI_DEMO): guidance away from the
    # design before it, one pass, every latent cell of the region free (cover), and the decoded edit
    # pasted into the image before it inside the region, so nothing else changes. The sleeve edit starts
    # from the image with the asked sleeve painted on (SleeveHint -> VAEEncode -> init), lower down.
    source, before, image, row = (9, 0), (3, 0), (10, 0), 1200
    for k, (key, value, title, attribute) in enumerate(edits):
        base = 20 + 10 * k
        reach = "Long" if key == "clothing_length" else "category"  # the longer of Knee-length and Long
        fields[key] = value
        start, init = {}, {}
        if key == "sleeve_length":
            from hierafash_core.editing.layout import OUTLINE_SHADE, SLEEVE_HINT_START_T

            nodes += [
                Node(base + 8, "HieraFash_SleeveHint", f"{title}: the asked sleeve painted on",
                     {"sleeve_length": value, "person_index": 0, "outline": OUTLINE_SHADE},
                     {"image": image, "pose_keypoint": (7, 0)},
                     pos=(380, row + 330)),
                Node(base + 9, "VAEEncode", f"{title}: painted image as the start", {},
                     {"pixels": (base + 8, 0), "vae": (1, 2)}, pos=(820, row + 450)),
            ]  # fmt: skip

            start = {"attribute": "custom timestep", "start_timestep": SLEEVE_HINT_START_T}
            init = {"init": (base + 9, 0)}
        nodes += [
            Node(base, "HieraFash_AttributeEncode", f"{title}: attributes", dict(fields),
                 {"clip": (1, 1), "design": (2, 1)}, pos=(380, row)),
            Node(base + 1, "ConditioningCombine", f"{title}: concepts + attributes", {},
                 {"conditioning_1": (2, 0), "conditioning_2": (base, 0)}, pos=(820, row)),
            Node(base + 6, "ConditioningCombine", f"{title}: the design before it (negative)", {},
                 {"conditioning_1": (2, 0), "conditioning_2": before}, pos=(820, row + 70)),
            Node(base + 2, "HieraFash_ParseMask", f"{title}: mask",
                 {"attribute": key, "category": "Dress", "grow": 0.0, "feather": 0.05, "person_index": 0,
                  "clip_to_person": False, "person_margin": 0.25, "refine_mode": "intersect", "refine_margin": 0.0,
                  "reach": reach},
                 {"image": (10, 0), "pose_keypoint": (7, 0)}, pos=(820, row + 140)),
            Node(base + 3, "HieraFash_GradientGuidedEdit", title,
                 edit_defaults(**{"attribute": attribute, **start}, steps=20, cfg=4.0, seed=10 + k,
                               latent_mask="cover"),
                 {"model": (1, 0), "positive": (base + 1, 0), "negative": (base + 6, 0), "source": source,
                  "mask": (base + 2, 0), "control_net": (1, 3), "pose_image": (6, 0), **init}, pos=(1260, row)),
            Node(base + 4, "VAEDecode", f"{title}: decode", {}, {"samples": (base + 3, 0), "vae": (1, 2)},
                 pos=(1700, row)),
            Node(base + 7, "ImageCompositeMasked", f"{title}: pasted into the image before it",
                 {"x": 0, "y": 0, "resize_source": False},
                 {"destination": image, "source": (base + 4, 0), "mask": (base + 2, 0)}, pos=(1700, row + 200)),
            Node(base + 5, "PreviewImage" if k < 2 else "SaveImage", f"{title}: result",
                 {} if k < 2 else {"filename_prefix": "HieraFash/mini_final"}, {"images": (base + 7, 0)},
                 pos=(1950, row)),
        ]  # fmt: skip
        source, before, image, row = (base + 3, 0), (base, 0), (base + 7, 0), row + 560
    return nodes


def to_api(nodes: list[Node]) -> dict:
    graph = {}
    for node in nodes:
        inputs = {k: v for k, v in node.widgets.items() if k not in UI_ONLY}
        inputs.update({name: [str(src), slot] for name, (src, slot) in node.links.items()})
        graph[str(node.id)] = {"class_type": node.type, "inputs": inputs, "_meta": {"title": node.title}}
    return graph


def to_ui(nodes: list[Node]) -> dict:
    ui_nodes, links, link_id = [], [], 0
    by_id = {n.id: n for n in nodes}
    out_links: dict[tuple[int, int], list[int]] = {}
    in_links: dict[tuple[int, str], int] = {}
    for node in by_id.values():
        for name, (src, slot) in node.links.items():
            link_id += 1
            spec_type = dict(SPECS[node.type]["inputs"])[name]
            links.append([link_id, src, slot, node.id, [i for i, _ in SPECS[node.type]["inputs"]].index(name),
                          spec_type])  # fmt: skip
            out_links.setdefault((src, slot), []).append(link_id)
            in_links[(node.id, name)] = link_id
    for order, node in enumerate(by_id.values()):
        spec = SPECS[node.type]
        widgets = [node.widgets[name] for name in spec["widgets"] if name in node.widgets]
        ui_nodes.append({
            "id": node.id,
            "type": node.type,
            "pos": list(node.pos),
            "size": [400, 100 + 26 * len(widgets)],
            "flags": {},
            "order": order,
            "mode": 0,
            "title": node.title,
            "inputs": [{"name": name, "type": typ, "link": in_links.get((node.id, name))}
                       for name, typ in spec["inputs"]],
            "outputs": [{"name": name, "type": typ, "links": out_links.get((node.id, slot), []), "slot_index": slot}
                        for slot, (name, typ) in enumerate(spec["outputs"])],
            "properties": {"Node name for S&R": node.type},
            "widgets_values": widgets,
        })  # fmt: skip
    return {
        "last_node_id": max(by_id),
        "last_link_id": link_id,
        "nodes": ui_nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


def write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path.relative_to(REPO)}")


def main() -> None:
    for name, build in (
        ("hierafash_edit_chain", edit_chain),
        ("hierafash_mini_design", mini_design),
    ):
        nodes = build()
        write(REPO / "workflows" / f"{name}.json", to_ui(nodes))
        write(REPO / "tests" / "workflows" / f"{name}_api.json", to_api(nodes))
    from PIL import Image

    Image.fromarray(mini_pose()[1]).save(REPO / "workflows" / MINI_POSE_IMAGE)
    print(f"wrote workflows/{MINI_POSE_IMAGE}")


if __name__ == "__main__":
    main()
