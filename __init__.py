"""HieraFash: hierarchical fashion design nodes for ComfyUI (HieraFashDiff).

ComfyUI loads this package from ``custom_nodes/`` and calls :func:`comfy_entrypoint`. Importing it
does no work: no downloads, no model loading, no ``sys.path`` changes. The nodes live in
``nodes/``; the headless library they call lives in ``hierafash_core/``.
"""


async def comfy_entrypoint():
    """V3 entrypoint: return the extension that lists this pack's nodes."""
    from .nodes import HieraFashExtension

    return HieraFashExtension()
