# The two front doors: `make run` and `make test`. Both start with the idempotent `make setup`.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup run test lint services bench clean-var

setup: $(STAMP) node_modules/.installed

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	# `npm ci` refuses this lock: anvil lists optional per-platform packages the registry lacks.
	# Exact versions in package.json plus the lock keep `npm install` reproducible.
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

run: setup
	$(BIN)/provenance serve

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy provenance detector generator tests bench

# The tests use the real PostgreSQL at 127.0.0.1:5432 and Debian's Chromium; start or install them if absent.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: lint services
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python -m bench.fingerprint
	$(BIN)/python -m bench.anchoring
	$(BIN)/python -m bench.index --sizes 10000,100000
	$(BIN)/python -m bench.verify
	$(BIN)/python -m bench.anchoring --apis 2
	$(BIN)/python -m bench.load

clean-var:
	rm -rf var

# The generator's shipped face-swap weights (carphone ← astronaut, float16) and swap.json beside
# them: fixed seed, one torch thread, at most 2000 steps or 18 minutes of this CPU.
.PHONY: swap-weights
swap-weights: setup
	$(BIN)/python -m generator.train --out generator/weights/swap.pt --steps 2000 --minutes 18 --seed 0 --threads 1

# The learned comparer's shipped weights (detector/weights/): train (< 30 min on this CPU, face-swap
# negatives from generator/weights/swap.pt), then evaluate on held-out footage next to the baseline.
# detector-weights-without-swaps makes the "before face-swap negatives" model it is compared with.
.PHONY: detector-weights detector-weights-without-swaps
detector-weights: setup
	$(BIN)/python -m detector.train --seed 0 --swaps on
	$(BIN)/python -m detector.evaluate --before detector/weights/without_swaps/evaluation.json

detector-weights-without-swaps: setup
	$(BIN)/python -m detector.train --seed 0 --swaps off --out detector/weights/without_swaps
	$(BIN)/python -m detector.evaluate --weights detector/weights/without_swaps/model.pt
