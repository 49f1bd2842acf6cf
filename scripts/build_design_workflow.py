"""Write the example design workflow, workflows/hierafash_design.json, from the graph builder.

    .venv/bin/python scripts/build_design_workflow.py

The file is :func:`hierafash_core.design.graph.example_workflow`: the same function that builds what
``hierafash design`` queues, laid out in UI format with a headless ComfyUI's /object_info (started
here on 127.0.0.1 with this pack), so socket names and widget order are the server's own.
tests/test_design_workflow.py checks that the file equals a fresh build and converts back to the
command's graph.
"""

from __future__ import annotations

import json
from pathlib import Path

from hierafash_core.api_client import ComfyClient
from hierafash_core.comfy_server import find_comfyui
from hierafash_core.design.graph import EXAMPLE_WORKFLOW, example_workflow
from hierafash_core.design.host import private_server

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    with private_server(find_comfyui(), {}) as server:
        info = ComfyClient(server.url, timeout=60).object_info()
    path = REPO / EXAMPLE_WORKFLOW
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(example_workflow(info), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
