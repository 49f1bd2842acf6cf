"""The built-in mini designer: a small model trained on the synthetic croquis with the pack's trainer.

- :func:`mini_designer_files` returns its files, building them when missing (the default model
  of the main-job command).
- :class:`MiniDesigner` loads them for headless use (drafts, and a denoiser for the edit loop).
- :func:`build_mini_designer` runs the recipe (``configs/mini-designer/recipe.json``).

See docs/mini-designer.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from .files import MiniDesignerFiles
from .paths import default_folder

log = logging.getLogger(__name__)


def mini_designer_files(
    folder: str | os.PathLike | None = None,
    *,
    build: bool = True,
    recipe: str = "cpu",
    report: Callable[[str], None] | None = None,
) -> MiniDesignerFiles:
    """The mini designer's files (checkpoint, pose ControlNet, manifest) in ``folder``.

    Args:
        folder: where they live; ``$HIERAFASH_MODELS/mini-designer`` or the pack's
            ``.cache/models/mini-designer`` by default.
        build: build them from the recipe when missing (about an hour on 2 CPU cores; a build that
            was cut short continues). With ``build=False`` missing files raise.
        recipe: ``cpu``, ``gpu`` or a recipe JSON path, for a build.

    Raises:
        FileNotFoundError: the files are missing and ``build`` is False.
    """
    from .build import build_mini_designer

    files = MiniDesignerFiles.in_folder(folder if folder is not None else default_folder())
    if files.exist():
        return files
    if not build:
        raise FileNotFoundError(
            f"the mini designer is not built in {files.folder}; run `hierafash mini-designer build` "
            "(about an hour on 2 CPU cores) or pass build=True"
        )
    log.warning("building the mini designer into %s (about an hour on 2 CPU cores)", files.folder)
    build_mini_designer(files.folder, recipe, report=report)
    return files


def __getattr__(name: str):
    # Heavier modules load on first use.
    if name == "MiniDesigner":
        from .pipeline import MiniDesigner

        return MiniDesigner
    if name == "build_mini_designer":
        from .build import build_mini_designer

        return build_mini_designer
    raise AttributeError(name)


__all__ = ["MiniDesigner", "MiniDesignerFiles", "build_mini_designer", "mini_designer_files"]
