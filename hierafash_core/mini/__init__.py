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
        _warn_if_recipe_changed(files)
        return files
    if not build:
        raise FileNotFoundError(
            f"the mini designer is not built in {files.folder}; run `hierafash mini-designer build` "
            "(about an hour on 2 CPU cores) or pass build=True"
        )
    log.warning("building the mini designer into %s (about an hour on 2 CPU cores)", files.folder)
    build_mini_designer(files.folder, recipe, report=report)
    return files


def _warn_if_recipe_changed(files: MiniDesignerFiles) -> None:
    """Log a warning when the recipe file the files were built from has changed since (a newer
    recipe of the pack): the files still load, but they are not what the recipe now builds."""
    import json
    from pathlib import Path

    from .files import sha256_file

    try:
        manifest = json.loads(files.manifest.read_text(encoding="utf-8"))
        recipe = Path(manifest["recipe"])
        now = sha256_file(recipe) if recipe.is_file() else None
    except (OSError, ValueError, KeyError, TypeError):
        return  # an unreadable manifest is `hierafash mini-designer info`'s to report
    if now is not None and now != manifest.get("recipe_sha256"):
        log.warning(
            "the mini designer in %s was built from an older version of %s; run `hierafash mini-designer build` "
            "to rebuild it from the current one (finished stages that did not change are reused)",
            files.folder,
            recipe,
        )


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
