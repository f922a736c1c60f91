# The two commands a newcomer needs:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config/clinical_rlhf_config.yaml

.PHONY: install demo test bench clean

$(BIN)/clinical-rlhf: pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned to the CPU build; the constraint keeps every later step from replacing it.
	$(BIN)/pip install -q -c constraints-cpu.txt torch
	$(BIN)/pip install -q -c constraints-cpu.txt -e '.[dev]'
	touch $@

install: $(BIN)/clinical-rlhf

# Each demo run gets its own directory (runs/demo-<time>), so `make demo` can be run again.
demo: install
	$(BIN)/clinical-rlhf train --config $(CONFIG) --set training.run_name=demo-$$(date +%Y%m%d-%H%M%S)

test: install
	$(BIN)/python -m pytest

# Every benchmark runs; the target fails at the end when any of them missed its target.
bench: install
	status=0; for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || status=1; done; exit $$status

clean:
	rm -rf $(VENV) runs artifacts .pytest_cache
