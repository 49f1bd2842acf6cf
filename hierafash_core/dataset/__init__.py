"""Datasets of fashion images with pose and hierarchical captions (docs/dataset-format.md)."""

from .check import CheckReport, Problem, check_dataset
from .importers import ImportReport, PoseDetector, import_csv, import_paper_layout, pack_pose_detector
from .preview import preview_grid
from .records import Pose, Record, RecordError, read_pose_json, read_records, resolve, write_pose_json, write_records

__all__ = [
    "CheckReport",
    "ImportReport",
    "Pose",
    "PoseDetector",
    "Problem",
    "Record",
    "RecordError",
    "check_dataset",
    "import_csv",
    "import_paper_layout",
    "pack_pose_detector",
    "preview_grid",
    "read_pose_json",
    "read_records",
    "resolve",
    "write_pose_json",
    "write_records",
]
