"""ComfyUI V3 nodes of the pack: thin wrappers that convert types and call ``hierafash_core``.

Each topic module exposes ``NODES``, a list of ``io.ComfyNode`` classes; node ids are
namespaced ``HieraFash_*`` and, once shipped, keep their widget order (saved workflows store
widget values by position).
"""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from . import design, drafting, editing, layout_hint, mini_designer, pose, staged_sampler


def all_nodes() -> list[type[io.ComfyNode]]:
    modules: list = [drafting, staged_sampler, pose, editing, layout_hint, design, mini_designer]
    return [node for module in modules for node in module.NODES]


class HieraFashExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return all_nodes()
