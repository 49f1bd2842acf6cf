"""Synthetic fashion croquis with exact labels (``hierafash synth``).

Python API:

- :func:`render` draws one design (ten fields + pose + look) into an image and a parse map.
- :func:`make_sample` draws record ``index`` of a data set from ``seed`` (fields, look, pose).
- :func:`write_dataset` writes a whole data set in the layout of docs/dataset-format.md.
"""

from .concepts import Look, sample_fields, sample_look
from .labels import DRAWN_AS, PARSE_LABELS, distinct_values, drawn_as
from .pose_bank import POSE_BANK, draw_pose, keypoints_from_openpose, openpose_json, split_poses
from .render import Sample, render
from .writer import SynthConfig, make_sample, write_dataset

__all__ = [
    "DRAWN_AS",
    "PARSE_LABELS",
    "POSE_BANK",
    "Look",
    "Sample",
    "SynthConfig",
    "distinct_values",
    "draw_pose",
    "drawn_as",
    "keypoints_from_openpose",
    "make_sample",
    "openpose_json",
    "render",
    "sample_fields",
    "sample_look",
    "split_poses",
    "write_dataset",
]
