# Two commands do everything on a fresh machine; each sets itself up on first use.
#   make demo   the main job: a design session on a real photo (see README)
#   make test   lint and the whole test suite, inside a real ComfyUI host
.PHONY: setup demo test lint format bench

setup:
	@bash scripts/bootstrap.sh

demo: setup
	HF_HUB_OFFLINE=1 .venv/bin/python -m hierafash_core.cli demo

test: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	HF_HUB_OFFLINE=1 .venv/bin/python -m pytest $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: setup
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .
