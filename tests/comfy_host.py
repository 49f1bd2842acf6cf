"""The real ComfyUI as a test host: in this process (graphs through its executor) or as a server.

In-process use follows ComfyUI's own start-up order: its arguments are set before
``comfy.model_management`` is imported (``--cpu``, the base directory), ``utils.extra_config``
is imported before ``nodes`` (``nodes`` puts ``comfy/`` first on ``sys.path``), then the built-in
extra nodes and the custom nodes of the base directory (this pack, linked) are loaded.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COMFY_DIR = REPO / ".cache" / "comfyui"
MODELS_CACHE = REPO / ".cache" / "models"


class _ServerStub:
    """What ``execution.PromptExecutor`` needs of a server: it records the messages it is sent."""

    def __init__(self) -> None:
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.messages: list[tuple[str, Any]] = []

    def send_sync(self, event, data, sid=None) -> None:
        self.messages.append((event, data))


class GraphFailed(RuntimeError):
    def __init__(self, message: str, messages: list):
        super().__init__(message)
        self.messages = messages


class InProcessComfy:
    """ComfyUI loaded into the test process, with this pack as a custom node."""

    def __init__(self, comfy_dir: Path, base_dir: Path):
        self.comfy_dir = Path(comfy_dir)
        self.base_dir = Path(base_dir)
        self.nodes = None
        self.execution = None

    def load(self) -> InProcessComfy:
        if str(self.comfy_dir) not in sys.path:
            sys.path.insert(0, str(self.comfy_dir))
        from comfy.cli_args import args

        args.cpu = True
        args.base_directory = str(self.base_dir)
        args.disable_api_nodes = True
        # Order matters and is not alphabetical: ComfyUI's utils package must be imported before
        # nodes/execution, which put comfy/ first on sys.path (where utils.py is another module).
        importlib.import_module("utils.extra_config")
        execution = importlib.import_module("execution")
        nodes = importlib.import_module("nodes")

        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
        self.nodes, self.execution = nodes, execution
        return self

    @property
    def node_classes(self) -> dict:
        return self.nodes.NODE_CLASS_MAPPINGS

    def validate(self, graph: dict, outputs: list[str] | None = None) -> tuple:
        """ComfyUI's own validation of an API-format graph: (ok, error, outputs, node_errors).

        With ``outputs`` the named nodes are validated as if they were output nodes, so a test
        can run a graph that ends in a LATENT or a MASK without a Save node.
        """
        if not outputs:
            return asyncio.run(self.execution.validate_prompt(uuid.uuid4().hex, graph, None))
        validated: dict = {}
        node_errors = {}
        for node_id in outputs:
            ok, reasons, _ = asyncio.run(self.execution.validate_inputs(uuid.uuid4().hex, graph, node_id, validated))
            if not ok:
                node_errors[node_id] = reasons
        for node_id, (ok, reasons, _) in validated.items():
            if not ok and reasons:
                node_errors[node_id] = reasons
        if node_errors:
            return False, {"type": "prompt_outputs_failed_validation"}, [], node_errors
        return True, None, list(outputs), {}

    def run(self, graph: dict, outputs: list[str] | None = None) -> dict[str, list]:
        """Validate and execute ``graph``; return ``{node_id: outputs}`` for every node that ran.

        Raises:
            GraphFailed: validation refused the graph or a node raised; the message carries
                ComfyUI's own error text.
        """
        ok, error, good_outputs, node_errors = self.validate(graph, outputs)
        if not ok:
            raise GraphFailed(f"validation failed: {error} {node_errors}", [("validation", node_errors)])
        stub = _ServerStub()
        executor = self.execution.PromptExecutor(stub, cache_type=False, cache_args={"ram": 0, "lru": 0})
        executor.execute(graph, uuid.uuid4().hex, {}, good_outputs)
        for event, data in executor.status_messages:
            if event in ("execution_error", "execution_interrupted"):
                raise GraphFailed(
                    f"{event} in node {data.get('node_id')} ({data.get('node_type')}): "
                    f"{data.get('exception_type', '')}: {data.get('exception_message', '')}",
                    executor.status_messages,
                )
        results = {}
        for node_id in graph:
            entry = executor.caches.outputs.get(node_id)
            if entry is not None:
                # ComfyUI keeps each output as a list (one item per list-mapped call); unwrap singles.
                results[node_id] = [o[0] if isinstance(o, list) and len(o) == 1 else o for o in entry.outputs]
        self.last_messages = executor.status_messages
        return results
