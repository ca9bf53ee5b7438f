# Two entry points for a newcomer: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

$(BIN)/twistd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --config-settings editable_mode=compat -e '.[test]'
	touch $@

.PHONY: install run test bench clean
install: $(BIN)/twistd

run: install
	$(BIN)/twistd -n msnp

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) *.egg-info
