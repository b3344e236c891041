# Two commands on a fresh machine with only Python 3.11+: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## build the virtualenv with the project and its dev tools

demo: $(STAMP)  ## generate the demo company and run it on the embedded warehouse
	$(BIN)/b2b demo

test: $(STAMP)  ## the whole suite (integration tests included)
	$(BIN)/ruff check plugins tests dags
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check plugins tests dags
	$(BIN)/ruff format --check plugins tests dags

bench: $(STAMP)
	$(BIN)/b2b bench

clean:
	rm -rf $(VENV) .b2b
