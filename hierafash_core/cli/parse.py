"""``hierafash parse``: an attribute's edit region from a photo: mask, preview and keypoints."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from . import CLIError
from .design_run import check_out_dir


def register(sub: argparse._SubParsersAction) -> None:
    from ..masks.build import REFINE_MODES
    from ..masks.regions import ATTRIBUTES

    p = sub.add_parser(
        "parse",
        help="body-region mask of an attribute (sleeves, collar, length, hem, garment) from a photo",
        description="Find the pose in PHOTO (MediaPipe, offline) or read it from --keypoints, then write the region "
        "each attribute may change as a mask PNG, a preview PNG and the keypoints as OpenPose JSON. Margins are in "
        "body units (1 = about the torso length), so they mean the same at any resolution.",
    )
    p.add_argument("photo", help="the photo (PNG, JPEG, WebP; grayscale and RGBA are fine)")
    p.add_argument(
        "--attribute", "-a", action="append", required=True, metavar="NAME",
        help=f"region to build: {', '.join(ATTRIBUTES)}, or 'all'; repeat or separate with commas",
    )  # fmt: skip
    p.add_argument("--out", default="out/parse", help="output folder (default: %(default)s)")
    p.add_argument(
        "--category", default="auto", help="garment category: how far length/hem reach (default: auto, the longest)"
    )
    p.add_argument(
        "--reach", default="category", metavar="LENGTH",
        help="length/hem/garment regions reach at least as far as a garment of this clothing length "
        "(the longer of before and after the edit; default: the category's usual range)",
    )  # fmt: skip
    p.add_argument("--keypoints", metavar="FILE.json", help="OpenPose JSON keypoints to use instead of detecting")
    p.add_argument(
        "--openpose-weights", metavar="FILE.safetensors",
        help="detect with controlnet-aux's OpenPose body network and these local weights instead of MediaPipe",
    )  # fmt: skip
    p.add_argument("--person-index", type=int, default=0, help="which person, 0 = the largest (default: 0)")
    p.add_argument("--grow", type=float, default=0.0, help="extra margin, body units (default: %(default)s)")
    p.add_argument("--feather", type=float, default=0.05, help="soft edge width, body units (default: %(default)s)")
    p.add_argument("--no-clip", action="store_true", help="do not clip the region to the detected silhouette")
    p.add_argument("--person-margin", type=float, default=0.25, help="reach beyond the silhouette, body units")
    p.add_argument("--refine-mask", metavar="FILE.png", help="a mask (white = keep) from a parser or segmenter")
    p.add_argument("--refine-mode", choices=REFINE_MODES, default="intersect", help="how --refine-mask combines")
    p.add_argument("--refine-margin", type=float, default=0.0, help="reach beyond --refine-mask, body units")
    p.set_defaults(func=run)


def load_image(path: Path, what: str = "photo") -> torch.Tensor:
    """A photo as (1, C, H, W) float in [0, 1]: C = 1 (grayscale), 3 (RGB) or 4 (with transparency)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if path.is_dir():
        raise CLIError(f"{what} {path}: is a folder; give an image file (PNG, JPEG, WebP)")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path}: no such file")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            im = im.convert("RGBA" if has_alpha else "L" if im.mode in ("L", "I", "I;16", "1") else "RGB")
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        raise CLIError(f"{path}: cannot read the image ({exc})") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()  # HWC -> 1CHW


def _attributes(values: list[str]) -> list[str]:
    from ..masks.regions import ATTRIBUTES, normalize_attribute

    names = [v.strip() for value in values for v in value.split(",") if v.strip()]
    if any(n.casefold() == "all" for n in names):
        return list(ATTRIBUTES)
    return list(dict.fromkeys(normalize_attribute(n) for n in names))


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(array).save(path)


def run(args: argparse.Namespace) -> int:
    from ..masks.build import _check_margin
    from ..masks.geometry import MissingKeypointsError
    from ..masks.parse import parse_image
    from ..masks.regions import normalize_category, normalize_reach
    from ..pose.detect import PoseDetectorUnavailable
    from ..pose.openpose_json import tensor_to_pose_keypoint

    # Every setting is checked before the photo is read and a pose detected (which takes seconds).
    attributes = _attributes(args.attribute)
    normalize_category(args.category)
    try:
        reach = normalize_reach(args.reach)
    except ValueError as exc:
        raise CLIError(str(exc).replace(f"reach={args.reach!r}", f"--reach {args.reach!r}", 1)) from None
    for name in ("grow", "feather", "person_margin", "refine_margin"):
        value = _check_margin(name, getattr(args, name))
        if name == "feather" and value < 0:
            raise CLIError(f"--feather {value}: must be 0 (a hard edge) or more")
    photo = Path(args.photo)
    image = load_image(photo)
    keypoints = None
    if args.keypoints:
        path = Path(args.keypoints)
        if path.is_dir():
            raise CLIError(f"--keypoints {path}: is a folder; give an OpenPose JSON file")
        if not path.is_file():
            raise FileNotFoundError(f"--keypoints {path}: no such file")
        try:
            keypoints = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CLIError(f"--keypoints {path}: not valid JSON ({exc})") from None
    refine = None
    if args.refine_mask:
        refine = load_image(Path(args.refine_mask), "--refine-mask")
        refine = refine[:, :1] if refine.shape[1] in (1, 2) else refine[:, :3].mean(dim=1, keepdim=True)
    out = Path(args.out)
    check_out_dir(out)  # before the pose is detected; made only once the inputs are read
    stem = photo.stem
    detector = None
    if args.openpose_weights:
        if keypoints is not None:
            raise CLIError("--keypoints and --openpose-weights: give one (keypoints, or a detector to find them)")
        from ..pose.openpose_body import load_openpose_body

        detector = load_openpose_body(args.openpose_weights)
    given, person_index, person_mask = keypoints, args.person_index, None
    first, skipped = None, []
    for attribute in attributes:
        try:
            result = parse_image(
                image,
                attribute,
                args.category,
                pose_keypoint=keypoints,
                person_mask=person_mask,
                detector=detector if keypoints is None else None,
                person_index=person_index,
                grow=args.grow,
                feather=args.feather,
                clip_to_person=not args.no_clip,
                person_margin=args.person_margin,
                refine_mask=refine,
                refine_mode=args.refine_mode,
                refine_margin=args.refine_margin,
                reach=args.reach,
            )
        except PoseDetectorUnavailable as exc:
            raise CLIError(str(exc)) from None
        except MissingKeypointsError as exc:
            if len(attributes) == 1:
                raise
            print(f"{attribute}: skipped: {exc}", file=sys.stderr)
            skipped.append(attribute)
            continue
        if first is None:
            first = result
            if given is None:  # detect once: the other attributes reuse the chosen person and silhouette
                keypoints = tensor_to_pose_keypoint(result.keypoints, tuple(result.mask.shape[-2:]))
                person_index, person_mask = 0, result.person_mask
        mask_path = out / f"{stem}_{attribute}_mask.png"
        preview_path = out / f"{stem}_{attribute}_preview.png"
        _save_png((result.mask[0, 0].numpy() * 255).round().astype(np.uint8), mask_path)
        _save_png((result.preview[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), preview_path)
        coverage = float(result.mask[0].mean())
        extent = ""
        if attribute in ("clothing_length", "hem", "garment"):
            extent = f", extent {result.categories[0]}" + (f" reaching {reach}" if reach != "category" else "")
        print(f"{attribute}: {mask_path} ({coverage:.0%} of the photo{extent}), {preview_path}")
    if first is None:
        raise CLIError(f"no region could be built for {photo}: {', '.join(skipped)} (see the reasons above)")
    json_path = out / f"{stem}_keypoints.json"
    json_path.write_text(json.dumps(first.pose_keypoint()[0], indent=1) + "\n", encoding="utf-8")
    people = first.people[0].shape[0]
    print(
        f"keypoints: {json_path} ({people} {'person' if people == 1 else 'people'}, largest first; used person "
        f"{args.person_index}; body unit {float(first.units[0]):.0f} px)"
    )
    return 1 if skipped else 0
