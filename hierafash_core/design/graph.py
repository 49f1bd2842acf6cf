"""The design session as one ComfyUI graph of the pack's own nodes, built by one function.

:func:`build_design_graph` turns a :class:`~.spec.DesignSpec` into the API-format graph that
``hierafash design`` queues (stage by stage) and, through :meth:`DesignGraph.ui`, into the UI
workflow users open (``workflows/hierafash_design.json`` is this function's output for the
example spec). One builder for both means the command and the example workflow are the same graph.

Stages (each a prompt; every prompt holds the earlier stages' nodes unchanged, so ComfyUI's cache
answers them without running them again):

0. pose:  photo -> PoseDetect -> PoseToCanvas (keypoints and skeleton on the design canvas), and
   every edit's ParseMask region, so a region the photo cannot give fails before any sampling;
1. draft: ConceptEncode + AttributeEncode -> StagedKSampler (pose ControlNet optional) -> image, latent;
k+1. edit k: AttributeEncode (the attributes so far) -> GradientGuidedEdit on the previous latent,
   inside edit k's mask -> image, latent. With ``sleeve_hint``, a sleeve-length edit starts from
   SleeveHint's painting of the previous image (VAEEncode -> the edit's init) at a lower timestep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..editing.layout import OUTLINE_SHADE, SLEEVE_HINT_START_T
from ..editing.starts import ATTRIBUTE_START_T
from ..taxonomy import ATTRIBUTE_FIELDS, CONCEPT_FIELDS, Field
from .spec import DesignSpec, Edit

UNSET = "(unset)"  # the drafting nodes' menu value for a field left out
PREFIX = "hierafash/design"  # subfolder of ComfyUI's output folder the graph saves into
PERSON_SEARCH = 2  # people PoseDetect looks for: the largest of them is designed on


def edit_choice(f: Field) -> str:
    """GradientGuidedEdit's menu value for an attribute, e.g. ``"A2 sleeve length (t=831)"``."""
    return f"{f.code} {f.label} (t={ATTRIBUTE_START_T[f.key]})"


@dataclass(frozen=True)
class Stage:
    """One prompt of the session.

    Attributes:
        key: ``pose``, ``draft``, ``edit1``, ...; ``title`` says it in words.
        saves: what the stage's output nodes write, ``{file name in the output folder: (node id, kind)}``
            with kind ``images``, ``latents`` or ``text`` (the history entry's key).
        progress_node: the node whose steps the progress bar follows (None: no sampling).
        edit: the edit this stage makes (None for pose and draft).
    """

    index: int
    key: str
    title: str
    saves: dict[str, tuple[str, str]]
    progress_node: str | None = None
    edit: Edit | None = None
    mask_file: str | None = None
    mask_node: str | None = None


@dataclass
class DesignGraph:
    """The built graph: nodes in API format, the stage each belongs to, and the UI layout."""

    spec: DesignSpec
    nodes: dict[str, dict] = field(default_factory=dict)
    stage_of: dict[str, int] = field(default_factory=dict)
    group_of: dict[str, int] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)

    def add(self, class_type: str, title: str, stage: int, group: int, **inputs: Any) -> str:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs, "_meta": {"title": title}}
        self.stage_of[node_id] = stage
        self.group_of[node_id] = group
        return node_id

    def api(self, upto: int | None = None) -> dict[str, dict]:
        """The API-format graph of stages ``0..upto`` (all stages when None); a fresh copy."""
        last = len(self.stages) - 1 if upto is None else upto
        if not 0 <= last < len(self.stages):
            raise ValueError(f"upto={upto}: the session has stages 0..{len(self.stages) - 1}")
        graph = {nid: node for nid, node in self.nodes.items() if self.stage_of[nid] <= last}
        return json.loads(json.dumps(graph))

    def ui(self, object_info: dict) -> dict:
        """The whole session as a UI workflow (groups per stage, a note on how to use it)."""
        from ..workflow import api_to_ui

        positions, boxes = self._layout(object_info)
        note = {
            "title": "How to use",
            "pos": (40, -330),
            "size": (760, 290),
            "text": _NOTE,
        }
        return api_to_ui(self.api(), object_info, positions, boxes, [note])

    def _layout(self, object_info: dict) -> tuple[dict[str, tuple[int, int]], list[dict]]:
        """Nodes of a group in columns by their depth inside the group; groups stacked downwards."""
        from ..workflow import _input_order, _is_widget

        def height(nid: str) -> int:
            info = object_info.get(self.nodes[nid]["class_type"], {})
            rows = sum(1 for _, spec, _ in _input_order(info))
            rows += 1 if any(_is_widget(s) and s[0] == "INT" and n == "seed" for n, s, _ in _input_order(info)) else 0
            return 70 + 26 * max(rows, len(info.get("output", [])))

        depth: dict[str, int] = {}
        for nid, node in self.nodes.items():  # nodes are added after their sources
            sources = [
                str(v[0])
                for v in node["inputs"].values()
                if isinstance(v, list) and len(v) == 2 and self.group_of.get(str(v[0])) == self.group_of[nid]
            ]
            depth[nid] = 1 + max((depth[s] for s in sources), default=-1)
        positions: dict[str, tuple[int, int]] = {}
        boxes, top = [], 0
        for g, title in enumerate(self.groups):
            members = [nid for nid in self.nodes if self.group_of[nid] == g]
            column_y: dict[int, int] = {}
            for nid in members:
                col = depth[nid]
                y = column_y.get(col, top + 50)
                positions[nid] = (40 + 400 * col, y)
                column_y[col] = y + height(nid) + 40
            bottom = max(column_y.values(), default=top + 100)
            width = 400 * (max((depth[n] for n in members), default=0) + 1) + 20
            boxes.append({"title": title, "bounding": [20, top, width, bottom - top], "color": _COLORS[g % 3]})
            top = bottom + 60
        return positions, boxes


_COLORS = ("#3f789e", "#8A8", "#a1309b")
_NOTE = (
    "HieraFash design session (HieraFashDiff): a draft from design concepts with the pose of a photo, then "
    "attribute edits one at a time, each only inside its body region.\n\n"
    "1. Photo: load a photo of a person (full body for length and hem edits).\n"
    "2. Checkpoint: an SD1.5, SD2.1 or SDXL checkpoint; ControlNet: an OpenPose ControlNet for it (or bypass "
    "the ControlNet loader with Ctrl+B to draw without pose control).\n"
    "3. Concepts and attributes: the menus of ConceptEncode / AttributeEncode. Each edit group has its own "
    "AttributeEncode (the attributes so far, plus the new one), ParseMask (the region) and GradientGuidedEdit.\n\n"
    'The same graph runs from a terminal: hierafash design PHOTO --edit "sleeve length=Long Sleeve" ... '
    "(see docs/design.md)."
)


def _fields_inputs(fields: tuple[Field, ...], values: dict[str, str]) -> dict[str, Any]:
    """Menu values for the drafting nodes; values outside the vocabulary (free text) go to free_text."""
    menus, free = {}, {}
    for f in fields:
        value = values.get(f.key)
        if value is not None and value not in f.values:
            free[f.key] = value
            value = None
        menus[f.key] = value if value is not None else UNSET
    menus["free_text"] = json.dumps(free) if free else ""
    return menus


def sleeve_hinted(spec: DesignSpec, edit: Edit) -> bool:
    """Whether this edit starts from SleeveHint's painting (``--sleeve-hint``, sleeve-length edits)."""
    return spec.sleeve_hint and edit.key == "sleeve_length"


def edit_start_t(spec: DesignSpec, edit: Edit) -> int:
    """The timestep an edit of the session starts at: the attribute's own, or the hinted sleeve's."""
    return SLEEVE_HINT_START_T if sleeve_hinted(spec, edit) else ATTRIBUTE_START_T[edit.key]


def build_design_graph(spec: DesignSpec) -> DesignGraph:
    """The session's graph: pose and masks, the draft, then one GradientGuidedEdit per edit (see module doc)."""
    g = DesignGraph(spec)
    # An input fed by another node's output is [node id, output slot].

    # -- stage 0: pose on the canvas, and every edit's region --------------------------------------
    g.groups = [
        "Pose from the photo" if spec.photo is not None else "Pose from the pose file",
        "Draft from design concepts",
        *(f"Edit {k}: {e.describe()}" for k, e in enumerate(spec.edits, 1)),
    ]
    if spec.photo is not None:
        photo = g.add("LoadImage", "Photo", 0, 0, image=spec.photo)
        pose = g.add("HieraFash_PoseDetect", "Pose from the photo", 0, 0, image=[photo, 0],
                     max_people=PERSON_SEARCH, model="full")  # fmt: skip
        canvas = g.add("HieraFash_PoseToCanvas", "Pose on the design canvas", 0, 0, pose_keypoint=[pose, 0],
                       width=spec.width, height=spec.height, fit=spec.fit, person_index=0,
                       image=[photo, 0])  # fmt: skip
    else:
        pose = g.add("HieraFash_PoseKeypointFromJSON", "Pose (OpenPose JSON)", 0, 0, json_text=spec.pose_json)
        canvas = g.add("HieraFash_PoseToCanvas", "Pose on the design canvas", 0, 0, pose_keypoint=[pose, 0],
                       width=spec.width, height=spec.height, fit=spec.fit, person_index=0)  # fmt: skip
    save_pose = g.add("SaveImage", "Save pose", 0, 0, images=[canvas, 1], filename_prefix=f"{PREFIX}/pose")
    pose_saves = {"pose.png": (save_pose, "images")}
    if spec.photo is not None:
        save_photo = g.add("SaveImage", "Save photo on the canvas", 0, 0, images=[canvas, 2],
                           filename_prefix=f"{PREFIX}/photo")  # fmt: skip
        pose_saves["photo.png"] = (save_photo, "images")
    masks = []
    for k, edit in enumerate(spec.edits, start=1):
        mask = g.add("HieraFash_ParseMask", f"Edit {k} region: {edit.field.label}", 0, k + 1,
                     image=[canvas, 2], attribute=edit.key, category=spec.category or "auto",
                     grow=spec.mask_grow, feather=spec.mask_feather, person_index=0, clip_to_person=False,
                     person_margin=0.25, refine_mode="intersect", refine_margin=0.0,
                     reach=spec.edit_reach(k), pose_keypoint=[canvas, 0])  # fmt: skip
        as_image = g.add("MaskToImage", f"Edit {k} region as image", 0, k + 1, mask=[mask, 0])
        name = f"mask{k}_{edit.key}"
        save = g.add("SaveImage", f"Save edit {k} region", 0, k + 1, images=[as_image, 0],
                     filename_prefix=f"{PREFIX}/{name}")  # fmt: skip
        pose_saves[f"{name}.png"] = (save, "images")
        masks.append((mask, f"{name}.png"))
    g.stages.append(Stage(0, "pose", "pose and edit regions", pose_saves))

    # -- stage 1: the draft ----------------------------------------------------------------------------
    d = 1  # the draft's group (edit k's is k + 1)
    # Outputs as [node id, slot]: the mini designer's loader gives all four, a checkpoint three.
    if spec.mini:
        loader = g.add("HieraFash_MiniDesignerLoader", "Mini designer (built-in)", 1, d, checkpoint="built-in",
                       pose_controlnet="built-in")  # fmt: skip
        model, clip, vae, control = [loader, 0], [loader, 1], [loader, 2], [loader, 3]
    else:
        ckpt = g.add("CheckpointLoaderSimple", "Checkpoint", 1, d, ckpt_name=spec.checkpoint)
        model, clip, vae, control = [ckpt, 0], [ckpt, 1], [ckpt, 2], None
        if spec.controlnet:
            cn = g.add("ControlNetLoader", "Pose ControlNet (OpenPose)", 1, d, control_net_name=spec.controlnet)
            control = [cn, 0]
    concepts = g.add("HieraFash_ConceptEncode", "Concepts (ideation)", 1, d, clip=clip,
                     **_fields_inputs(CONCEPT_FIELDS, spec.concepts), allow_free_text=spec.allow_free_text,
                     schedule=spec.schedule)  # fmt: skip
    attrs = g.add("HieraFash_AttributeEncode", "Draft attributes", 1, d, clip=clip,
                  design=[concepts, 1], **_fields_inputs(ATTRIBUTE_FIELDS, spec.attributes_after(0)),
                  allow_free_text=spec.allow_free_text)  # fmt: skip
    negative = g.add("CLIPTextEncode", "Negative prompt", 1, d, text=spec.negative, clip=clip)
    if spec.start_denoise < 1:
        latent = g.add("VAEEncode", "Photo as the starting image", 1, d, pixels=[canvas, 2], vae=vae)
    else:
        latent = g.add("EmptyLatentImage", "Canvas", 1, d, width=spec.width, height=spec.height, batch_size=1)
    pose_inputs = {"control_net": control, "pose_image": [canvas, 1]} if control else {}
    sampler = g.add("HieraFash_StagedKSampler", "Draft", 1, d, model=model, concepts=[concepts, 0],
                    negative=[negative, 0], latent_image=[latent, 0], seed=spec.seed, steps=spec.steps,
                    cfg=spec.cfg, sampler_name=spec.sampler, scheduler=spec.scheduler, denoise=spec.start_denoise,
                    schedule="from conditioning", schedule_spec="", pose_strength=spec.pose_strength,
                    pose_stages="all stages", attributes=[attrs, 0], **pose_inputs)  # fmt: skip
    plan = g.add("PreviewAny", "Draft plan", 1, d, source=[sampler, 1])
    decoded = g.add("VAEDecode", "Decode draft", 1, d, samples=[sampler, 0], vae=vae)
    save = g.add("SaveImage", "Save draft", 1, d, images=[decoded, 0], filename_prefix=f"{PREFIX}/draft")
    save_latent = g.add("SaveLatent", "Save draft latent", 1, d, samples=[sampler, 0],
                        filename_prefix=f"{PREFIX}/latents/draft")  # fmt: skip
    g.stages.append(Stage(1, "draft", "draft from concepts",
                          {"draft.png": (save, "images"), "latents/draft.latent": (save_latent, "latents"),
                           "draft_plan.txt": (plan, "text")}, progress_node=sampler))  # fmt: skip

    # -- stages 2..: one edit each, on the previous stage's latent --------------------------------------
    source, source_attrs, image = sampler, attrs, decoded
    for k, (edit, (mask, mask_file)) in enumerate(zip(spec.edits, masks, strict=True), start=1):
        grp = k + 1
        name = f"edit{k}_{edit.key}"
        stage = k + 1
        enc = g.add("HieraFash_AttributeEncode", f"Edit {k} attributes", stage, grp, clip=clip,
                    design=[concepts, 1], **_fields_inputs(ATTRIBUTE_FIELDS, spec.attributes_after(k)),
                    allow_free_text=spec.allow_free_text)  # fmt: skip
        # The concept windows too: an edit that starts above the first attribute window (A1 at t=911)
        # must not run steps without any active conditioning.
        positive = g.add("ConditioningCombine", f"Edit {k} prompt", stage, grp, conditioning_1=[concepts, 0],
                         conditioning_2=[enc, 0])  # fmt: skip
        edit_negative = negative
        if spec.edit_negative == "source":
            # the design before this edit, staged as the positive is: the two differ in the edited
            # attribute only, so guidance pushes along what the new value adds
            edit_negative = g.add("ConditioningCombine", f"Edit {k} source design (negative)", stage, grp,
                                  conditioning_1=[concepts, 0], conditioning_2=[source_attrs, 0])  # fmt: skip
        edit_pose = {"control_net": control, "pose_image": [canvas, 1]} if control else {}
        start = {"attribute": edit_choice(edit.field), "start_timestep": 751}
        if sleeve_hinted(spec, edit):
            # the asked sleeve painted on from the pose, encoded as where the region starts, and a lower
            # start so that its layout survives (docs/editing.md)
            hint = g.add("HieraFash_SleeveHint", f"Edit {k} sleeve painted on", stage, grp, image=[image, 0],
                         pose_keypoint=[canvas, 0], sleeve_length=edit.value, person_index=0,
                         outline=OUTLINE_SHADE)  # fmt: skip
            encoded = g.add("VAEEncode", f"Edit {k} sleeve hint as a latent", stage, grp, pixels=[hint, 0], vae=vae)
            start = {"attribute": "custom timestep", "start_timestep": edit_start_t(spec, edit), "init": [encoded, 0]}
        edited = g.add("HieraFash_GradientGuidedEdit", f"Edit {k}: {edit.describe()}", stage, grp,
                       model=model, positive=[positive, 0], negative=[edit_negative, 0],
                       source=[source, 0], mask=[mask, 0], start_step=8, steps=spec.steps, cfg=spec.cfg,
                       sampler=spec.edit_sampler,
                       scheduler=spec.scheduler, seed=spec.seed + k, mode=spec.edit_mode, guidance_weight=1.0,
                       guidance_start=0.0, guidance_end=spec.guidance_end, gradient_path=spec.gradient_path,
                       guidance_iterations=1, start_method="noise", inversion_refinements=0,
                       control_strength=spec.pose_strength, resample=spec.edit_resample, resample_share=0.5,
                       latent_mask="cover" if spec.edit_paste else "average",
                       **start, **edit_pose)  # fmt: skip
        decoded = g.add("VAEDecode", f"Decode edit {k}", stage, grp, samples=[edited, 0], vae=vae)
        if spec.edit_paste:
            # the edit inside its region, the image before it everywhere else (pixel-exact there)
            decoded = g.add("ImageCompositeMasked", f"Edit {k} pasted into the image before it", stage, grp,
                            destination=[image, 0], source=[decoded, 0], x=0, y=0, resize_source=False,
                            mask=[mask, 0])  # fmt: skip
        save = g.add("SaveImage", f"Save edit {k}", stage, grp, images=[decoded, 0],
                     filename_prefix=f"{PREFIX}/{name}")  # fmt: skip
        save_latent = g.add("SaveLatent", f"Save edit {k} latent", stage, grp, samples=[edited, 0],
                            filename_prefix=f"{PREFIX}/latents/{name}")  # fmt: skip
        g.stages.append(Stage(stage, f"edit{k}", f"edit {k}: {edit.describe()}",
                              {f"{name}.png": (save, "images"), f"latents/{name}.latent": (save_latent, "latents")},
                              progress_node=edited, edit=edit, mask_file=mask_file, mask_node=mask))  # fmt: skip
        source, source_attrs, image = edited, enc, decoded
    return g


EXAMPLE_WORKFLOW = "workflows/hierafash_design.json"


def example_spec() -> DesignSpec:
    """The settings of the shipped workflow: the paper's example design, three edits, 512x704, 30 steps,
    an SD1.5 checkpoint with its OpenPose ControlNet (the file names ComfyUI users have)."""
    from .spec import EXAMPLE_CONCEPTS, EXAMPLE_EDITS

    category = EXAMPLE_CONCEPTS["category"]
    return DesignSpec(
        photo="person.png",
        concepts=dict(EXAMPLE_CONCEPTS),
        edits=[Edit.parse(e, category) for e in EXAMPLE_EDITS],
        checkpoint="v1-5-pruned-emaonly.safetensors",
        controlnet="control_v11p_sd15_openpose.safetensors",
    )


def example_workflow(object_info: dict) -> dict:
    """``workflows/hierafash_design.json``: the example spec's graph in UI format."""
    return build_design_graph(example_spec()).ui(object_info)
