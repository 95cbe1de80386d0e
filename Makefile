# The two commands of the README. Each sets itself up on a fresh machine: a virtual
# environment in .venv with the project and its test tools installed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: serve test lint install

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Run the receiver. Without DATABASE_URL it starts an embedded PostgreSQL 18 whose data
# lives in ./.optiqoflow (kept across restarts) and migrates it.
serve: $(STAMP)
	$(BIN)/optiqoflow serve --host $${HOST:-127.0.0.1} --port $${PORT:-8080}

# Run the whole test suite. Without OPTIQOFLOW_TEST_DSN it starts an embedded PostgreSQL.
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check receiver operations simulator db tests bench
	$(BIN)/mypy
