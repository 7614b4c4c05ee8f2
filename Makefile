# Two entry points (see README): `make quickstart` and `make test`. Both set up .venv first;
# setup is skipped when the environment is already up to date.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU-only by default; on a GPU machine run `make setup CONSTRAINTS=` to keep your own torch.
CONSTRAINTS ?= constraints/cpu.txt
PIP_CONSTRAINT_FLAGS := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
QUICKSTART_DIR ?= runs/quickstart

.PHONY: setup quickstart lint test test-fast clean

setup: $(VENV)/.stamp-setup

$(VENV)/.stamp-setup: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(PIP_CONSTRAINT_FLAGS) -e '.[test]'
	# render the recipes' --help once, so that a user's first `t5lab COMMAND --help` prints from the cache
	for command in pretrain finetune evaluate predict; do $(BIN)/t5lab $$command --help > /dev/null; done
	touch $@

# Offline: pre-train on Python's bundled docs, then fine-tune and evaluate on a task written from them.
quickstart: setup
	HF_HUB_OFFLINE=1 $(BIN)/t5lab pretrain --config configs/quickstart.yaml --output_dir $(QUICKSTART_DIR)/pretrain
	$(BIN)/python -m t5lab.tasks.bundled $(QUICKSTART_DIR)/data
	HF_HUB_OFFLINE=1 $(BIN)/t5lab finetune --config configs/quickstart_finetune.yaml \
	  --model_name_or_path $(QUICKSTART_DIR)/pretrain --data_dir $(QUICKSTART_DIR)/data --output_dir $(QUICKSTART_DIR)/finetune

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# One worker per core (pytest-xdist), a test file per worker so module fixtures are built once.
test: setup lint
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -n auto --dist loadfile

test-fast: setup
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
