"""What a design session asks for: concepts, the draft's attributes, attribute edits in order, and settings.

A :class:`DesignSpec` is what the graph builder reads; it names files as ComfyUI sees them (an image
in the input folder, a checkpoint name in ``models/checkpoints``). It is built from command-line
options and/or a design file (JSON or YAML)::

    photo: person.jpg                 # or  pose: keypoints.json  (OpenPose JSON)
    concepts: {category: Dress, style: Elegant, occasion: Party}
    attributes: {clothing length: Long}    # of the draft (optional)
    edits:                                 # in order; each changes one attribute in its body region
      - sleeve length: Long Sleeve
      - collar=V-Neck
      - {hem: Draped}
    checkpoint: v1-5-pruned-emaonly.safetensors
    seed: 7
    steps: 30

Every name and value is checked here, before anything runs: unknown fields and values get the
closest labels; an edit must name an attribute (A1-A5), not a concept.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..prompt import HierarchicalPrompt
from ..schedule import PromptSchedule
from ..synth.details import SLEEVE_END
from ..taxonomy import ATTRIBUTE_FIELDS, CONCEPT_FIELDS, Field, Level, get_field, normalize_value
from .canvas import FITS, check_canvas

log = logging.getLogger(__name__)

# The paper's design example (DESIGN.md section 2), used by the demo and the shipped workflow.
EXAMPLE_CONCEPTS = {
    "category": "Dress",
    "style": "Elegant",
    "occasion": "Party",
    "effect": "Elongate Neck",
    "feeling": "Sense of Agility and Elegance",
}
EXAMPLE_EDITS = ("sleeve length=Long Sleeve", "collar=V-Neck", "hem=Draped")
DEFAULT_NEGATIVE = "lowres, blurry, deformed body, extra limbs, cropped, watermark, text"
EDIT_MODES = ("both", "blend", "guide")
EDIT_SAMPLERS = ("euler", "euler_ancestral", "dpmpp_2m")
GRADIENT_PATHS = ("clean estimate", "through the model")
# What an edit's classifier-free guidance pushes away from: the negative prompt ("text"), or the
# design before the edit ("source": its concepts and attributes, staged), so that guidance pushes
# only along what the changed attribute adds (docs/editing.md).
EDIT_NEGATIVES = ("text", "source")
# The draft's sampler and scheduler names as ComfyUI 0.3.75 lists them (comfy.samplers.KSampler.SAMPLERS
# and SCHEDULERS; the core never imports ComfyUI). They are checked here, before a server starts; the
# CLI then checks the server's own lists (its object_info) before the first stage is queued, so an
# older ComfyUI that lacks a name is refused too. TODO(evidence): a name only a newer ComfyUI has is
# refused here; next step: let a --server's object_info widen these lists before the spec is checked.
SAMPLERS = (
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
    "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2",
)  # fmt: skip
SCHEDULERS = ("simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal", "linear_quadratic",
              "kl_optimal")  # fmt: skip
SEED_MAX = 0xFFFFFFFFFFFFFFFF  # ComfyUI's seed widgets take 0 .. 2**64 - 1
# The checkpoint name that means the pack's built-in mini designer (docs/mini-designer.md), loaded by
# MiniDesignerLoader with its own text encoder, autoencoder and pose ControlNet, at its one size.
MINI_DESIGNER = "built-in"
MINI_SIZE = (128, 192)


@dataclass(frozen=True)
class Edit:
    """One attribute edit: the field (an attribute, A1-A5) and its new value (a vocabulary label)."""

    field: Field
    value: str

    @property
    def key(self) -> str:
        return self.field.key

    def describe(self) -> str:
        return f"{self.field.label} = {self.value}"

    @classmethod
    def parse(cls, item: Any, category: str | None = None, allow_free_text: bool = False) -> Edit:
        """``"sleeve length=Long Sleeve"``, ``"A4: V-Neck"`` or ``{"collar": "V-Neck"}``.

        Raises:
            ValueError: not NAME=VALUE, an unknown field (with the closest names), a concept field,
                or a value outside the vocabulary (with the closest labels).
        """
        if isinstance(item, Mapping):
            if len(item) != 1:
                raise ValueError(f"edit {dict(item)!r}: give one attribute per edit, e.g. {{'collar': 'V-Neck'}}")
            ((name, value),) = item.items()
        else:
            text = str(item)
            sep = "=" if "=" in text else ":" if ":" in text else None
            if sep is None:
                raise ValueError(f'edit {text!r}: write ATTRIBUTE=VALUE, e.g. --edit "sleeve length=Long Sleeve"')
            name, _, value = text.partition(sep)
        name, value = str(name).strip(), str(value).strip()
        try:
            f = get_field(name)
        except ValueError as exc:
            raise ValueError(f"edit {name}={value}: {exc}") from None
        if f.level is not Level.ATTRIBUTE:
            attrs = ", ".join(a.label for a in ATTRIBUTE_FIELDS)
            raise ValueError(
                f"edit {name}={value}: {f.label} is a design concept, set for the whole draft (--{f.key}); "
                f"edits change one attribute in its body region: {attrs}"
            )
        if not value:
            raise ValueError(f"edit {name}=: the value is empty; e.g. {f.label}={f.values[-1]}")
        try:
            canonical = normalize_value(f, value, allow_free_text=allow_free_text, category=category)
        except ValueError as exc:
            raise ValueError(f"edit {name}={value}: {exc}") from None
        return cls(f, canonical)


@dataclass
class DesignSpec:
    """A design session as ComfyUI will run it (file names as ComfyUI sees them).

    Exactly one of ``photo`` (an image name in ComfyUI's input folder) and ``pose_json`` (OpenPose
    JSON text) gives the pose. ``start_denoise`` below 1 starts the draft from the photo instead of
    from noise (1 = from noise). Edit k uses seed ``seed + k``.
    """

    photo: str | None = None
    pose_json: str | None = None
    concepts: dict[str, str] = field(default_factory=lambda: dict(EXAMPLE_CONCEPTS))
    attributes: dict[str, str] = field(default_factory=dict)
    edits: list[Edit] = field(default_factory=list)
    checkpoint: str = "v1-5-pruned-emaonly.safetensors"
    controlnet: str | None = None
    negative: str = DEFAULT_NEGATIVE
    seed: int = 20240114
    steps: int = 30
    cfg: float = 9.0
    sampler: str = "ddim"
    # ComfyUI's default: its first step is at full noise for any step count (ddim_uniform's first step
    # is t=901 at 10 steps and t=749 at 4, which skips the concept window t >= 900).
    scheduler: str = "normal"
    edit_sampler: str = "euler"
    edit_mode: str = "both"
    width: int = 512
    height: int = 704
    fit: str = "contain"
    start_denoise: float = 1.0
    schedule: str = "paper"
    pose_strength: float = 1.0
    mask_grow: float = 0.0
    mask_feather: float = 0.05
    allow_free_text: bool = False
    # Guidance of the edits: "through the model" follows outlines better but costs a backward pass
    # through the UNet per step, so it acts only until guidance_end of the edit (docs/editing.md).
    gradient_path: str = "clean estimate"
    guidance_end: float = 1.0
    edit_negative: str = "text"
    # Resampling passes per step in the first half of each edit (1 = off; GradientGuidedEdit's resample).
    edit_resample: int = 1
    # Each edit frees every latent cell its region touches (latent_mask "cover"), and its decoded image
    # is pasted into the previous image inside the region (ImageCompositeMasked): exact outside it.
    edit_paste: bool = False
    # Sleeve-length edits start from the draft with the asked sleeve painted on from the pose (SleeveHint
    # -> VAEEncode -> GradientGuidedEdit's init), at t = SLEEVE_HINT_START_T instead of the paper's 831.
    sleeve_hint: bool = False

    def __post_init__(self) -> None:
        self.validate()

    # -- checks ---------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every setting; raises ValueError naming the setting, its value and the fix."""
        if (self.photo is None) == (self.pose_json is None):
            raise ValueError("give the pose as a photo or as a pose file (OpenPose JSON), one of the two")
        if self.pose_json is not None and self.start_denoise < 1:
            raise ValueError(
                f"start_denoise={self.start_denoise}: starting from the photo needs a photo, not a pose file; "
                "give a photo or leave start_denoise at 1"
            )
        self.prompt()  # concepts and attributes in the vocabulary
        if not any(k in self.concepts for k in (f.key for f in CONCEPT_FIELDS)):
            raise ValueError("concepts: none is set; give at least a category (e.g. --category Dress)")
        check_canvas(self.width, self.height)
        for name, value, low in (("steps", self.steps, 1), ("seed", self.seed, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}={value!r}: must be a whole number, at least {low}")
        if self.seed > SEED_MAX:
            raise ValueError(f"seed={self.seed}: at most {SEED_MAX} (2**64 - 1), ComfyUI's largest seed")
        for name, value, names in (("sampler", self.sampler, SAMPLERS), ("scheduler", self.scheduler, SCHEDULERS)):
            if value not in names:
                raise ValueError(f"{name}={value!r}: not a ComfyUI {name}; use one of {', '.join(names)}")
        if self.steps > 1000:
            raise ValueError(f"steps={self.steps}: at most 1000")
        if not 0 <= self.cfg <= 100:
            raise ValueError(f"cfg={self.cfg}: must be between 0 and 100")
        if not 0 < self.start_denoise <= 1:
            raise ValueError(
                f"start_denoise={self.start_denoise}: must be in (0, 1]; 1 draws the draft from noise, lower keeps "
                "more of the photo"
            )
        if self.fit not in FITS:
            raise ValueError(f"fit={self.fit!r}: use one of {', '.join(FITS)}")
        if self.edit_mode not in EDIT_MODES:
            raise ValueError(f"edit_mode={self.edit_mode!r}: use one of {', '.join(EDIT_MODES)}")
        if self.edit_sampler not in EDIT_SAMPLERS:
            raise ValueError(f"edit_sampler={self.edit_sampler!r}: use one of {', '.join(EDIT_SAMPLERS)}")
        if not 0 <= self.pose_strength <= 10:
            raise ValueError(f"pose_strength={self.pose_strength}: must be between 0 and 10")
        try:
            PromptSchedule.parse(self.schedule)
        except ValueError as exc:
            raise ValueError(f"schedule={self.schedule!r}: {exc}") from None
        if not self.checkpoint:
            raise ValueError("checkpoint: empty; give a checkpoint file name or path")
        if self.gradient_path not in GRADIENT_PATHS:
            raise ValueError(f"gradient_path={self.gradient_path!r}: use one of {', '.join(GRADIENT_PATHS)}")
        if not 0 < self.guidance_end <= 1:
            raise ValueError(f"guidance_end={self.guidance_end}: must be in (0, 1], the share of the edit guided")
        if (
            not isinstance(self.edit_resample, int)
            or isinstance(self.edit_resample, bool)
            or not (1 <= self.edit_resample <= 20)
        ):
            raise ValueError(
                f"edit_resample={self.edit_resample!r}: give a whole number of passes per step from 1 (off) to 20"
            )
        for name in ("edit_paste", "sleeve_hint"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r}: give true or false")
        if self.edit_negative not in EDIT_NEGATIVES:
            raise ValueError(
                f"edit_negative={self.edit_negative!r}: use text (the negative prompt) or source (the design "
                "before the edit)"
            )
        if self.sleeve_hint:
            for k, edit in enumerate(self.edits, start=1):
                if edit.key == "sleeve_length" and edit.value not in SLEEVE_END:
                    raise ValueError(
                        f"edit {k}: sleeve length {edit.value!r} is free text, and sleeve_hint paints only "
                        f"{', '.join(SLEEVE_END)}; pick one of those, or turn the hint off (--no-sleeve-hint, or "
                        "sleeve_hint: false in a design file; it is on by default for the built-in mini designer)"
                    )
        if self.mini:
            if (self.width, self.height) != MINI_SIZE:
                raise ValueError(
                    f"width x height = {self.width} x {self.height}: the built-in mini designer draws "
                    f"{MINI_SIZE[0]} x {MINI_SIZE[1]} only; leave out --width/--height (or give those)"
                )
            if self.controlnet:
                raise ValueError(
                    f"controlnet={self.controlnet!r}: the built-in mini designer brings its own pose ControlNet; "
                    "leave out --controlnet"
                )

    @property
    def mini(self) -> bool:
        """Whether the session runs on the built-in mini designer."""
        return self.checkpoint == MINI_DESIGNER

    # -- derived --------------------------------------------------------------------------------
    @property
    def category(self) -> str | None:
        return self.concepts.get("category")

    def prompt(self) -> HierarchicalPrompt:
        """The draft's fields: concepts plus the draft attributes."""
        return HierarchicalPrompt.from_mapping(
            {**self.concepts, **self.attributes}, allow_free_text=self.allow_free_text
        )

    def attributes_after(self, k: int) -> dict[str, str]:
        """The attribute fields in force after edit ``k`` (1-based; 0 = the draft): later edits win."""
        out = dict(self.attributes)
        for edit in self.edits[:k]:
            out[edit.key] = edit.value
        return out

    def edit_reach(self, k: int) -> str:
        """ParseMask's ``reach`` for edit ``k`` (1-based): for a length or hem edit, the longer of the
        clothing lengths before and after it (where the design names them), so the region holds both
        the garment to remove and the one to draw; ``'category'`` otherwise."""
        from ..masks.regions import REACH_CATEGORY, longest_length  # the masks package brings torch

        edit = self.edits[k - 1]
        if edit.key not in ("clothing_length", "hem"):
            return REACH_CATEGORY
        before = self.edit_prompt(k - 1).values.get("clothing_length")
        after = edit.value if edit.key == "clothing_length" else None
        return longest_length(before, after)

    def edit_prompt(self, k: int) -> HierarchicalPrompt:
        return HierarchicalPrompt.from_mapping(
            {**self.concepts, **self.attributes_after(k)}, allow_free_text=self.allow_free_text
        )

    def settings(self) -> dict[str, Any]:
        """The settings as plain JSON values (for the run record)."""
        out = dataclasses.asdict(self)
        out["edits"] = [{"attribute": e.field.label, "code": e.field.code, "value": e.value} for e in self.edits]
        if self.pose_json is not None:
            out["pose_json"] = f"({len(self.pose_json)} characters of OpenPose JSON)"
        return out


def normalize_fields(data: Any, level: Level | None, where: str, allow_free_text: bool = False) -> dict[str, str]:
    """Fields given as a mapping or a comma caption -> ``{key: canonical value}`` of one level.

    Raises:
        ValueError: a field of the other level, an unknown field or value.
    """
    if data is None:
        return {}
    first = 1 if level is not Level.ATTRIBUTE else len(CONCEPT_FIELDS) + 1
    try:
        prompt = HierarchicalPrompt.parse(data, allow_free_text=allow_free_text, first_field=first)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    out = {}
    for key, value in prompt.values.items():
        f = get_field(key)
        if level is not None and f.level is not level:
            other = "--edit / attributes" if f.level is Level.ATTRIBUTE else "concepts"
            raise ValueError(f"{where}: {f.label} is {'an attribute' if f.level is Level.ATTRIBUTE else 'a concept'}; "
                             f"give it under {other}")  # fmt: skip
        out[key] = value
    return out


def load_design_file(path: str | Path) -> dict[str, Any]:
    """Read a design file (JSON, or YAML for .yaml/.yml) into a mapping of settings.

    Raises:
        FileNotFoundError, ValueError: missing file, not JSON/YAML, not a mapping.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"design file {str(p)!r} is a folder; give a JSON or YAML design file")
    if not p.is_file():
        raise FileNotFoundError(f"design file {str(p)!r} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"design file {str(p)!r} is not text; write it as JSON or YAML") from None
    try:
        data = yaml.safe_load(text) if p.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        kind = "YAML" if p.suffix.lower() in (".yaml", ".yml") else "JSON"
        raise ValueError(f"design file {str(p)!r} is not valid {kind}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"design file {str(p)!r}: expected a mapping of settings (photo, concepts, edits, ...)")
    return data
