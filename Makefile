# Switchyard: `make run` (sandbox on http://127.0.0.1:8000), `make test`, `make bench`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

export SWITCHYARD_ENV ?= sandbox
export AWS_ACCESS_KEY_ID ?= sandbox
export AWS_SECRET_ACCESS_KEY ?= sandbox
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: install run test lint bench mutation clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py createcachetable
	$(BIN)/honcho --procfile Procfile start

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy portal onboarding switchroles billing elevations
	$(BIN)/lint-imports
	$(BIN)/bandit --quiet --recursive --severity-level high portal onboarding switchroles billing elevations

# The export tests read the AWS Extend Switch Roles export with the extension's own parser (npm).
NODE_READERS := tests/node/node_modules/.package-lock.json

$(NODE_READERS): tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund

# Two passes: everything but the real-process and real-browser tests in parallel (pytest-xdist, one
# worker per core), then those one at a time with the whole machine, because their timings are real.
test: lint $(NODE_READERS)
	$(BIN)/pytest -n 2 --ignore=tests/e2e $(PYTEST_ARGS)
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Mutation testing (README, "Mutation testing"): which modules are mutated and which tests judge
# them is [tool.mutmut] in pyproject.toml. One worker unless told (the machine is shared); results
# are kept in mutants/ and a re-run only tries mutants not yet judged. MUTANTS narrows a run to
# some functions, e.g. the policy compiler's: make mutation MUTANTS="$(MUTATION_COMPILER)".
MUTATION_CHILDREN ?= 1
MUTATION_COMPILER := portal.aws.policy_compiler.*
MUTATION_STEPS := portal.steps.*
MUTATION_ENFORCEMENT := switchroles.enforcement.*

mutation: install
	$(BIN)/mutmut run --max-children $(MUTATION_CHILDREN) $(MUTANTS)
	$(BIN)/mutmut results

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache mutants/
