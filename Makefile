# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/parley serve

test: $(STAMP)
	$(BIN)/ruff check bot adapters tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench.engine
	$(BIN)/python -m bench.slack
	$(BIN)/python -m bench.documents
	$(BIN)/python -m bench.policy
	$(BIN)/python -m bench.images
	$(BIN)/python -m bench.tools
	$(BIN)/python -m bench.pod_memory

# Re-pin every dependency (direct and transitive) after changing pyproject.toml.
lock:
	$(PYTHON) -m venv /tmp/parley-lock && /tmp/parley-lock/bin/pip install --quiet -e '.[dev]'
	/tmp/parley-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
	rm -rf /tmp/parley-lock

clean:
	rm -rf $(VENV)
