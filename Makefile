# The two front doors: `make run` and `make test`. Both start with the idempotent `make setup`.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup run test test-fast lint services bench clean-var system-packages

setup: system-packages $(STAMP) node_modules/.installed

# Debian packages the code runs: espeak-ng speaks the evaluation's and the tests' speech
# (generator/speech.py). Installed when missing (root, as on the project's machines and CI).
DEBIAN_PACKAGES := espeak-ng
system-packages:
	@command -v espeak-ng >/dev/null || (apt-get update -qq && apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null)

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
	$(BIN)/mypy provenance detector generator frames harness tests bench

# The tests use the real PostgreSQL at 127.0.0.1:5432 and Debian's Chromium; start or install them if absent.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: lint services
	$(BIN)/pytest -q

# Everything but the tests marked slow (real processes, training, the browser); CI runs `make test`.
test-fast: lint services
	$(BIN)/pytest -q -m "not slow"

bench: setup
	$(BIN)/python -m bench.fingerprint
	$(BIN)/python -m bench.anchoring
	$(BIN)/python -m bench.index --sizes 10000,100000
	$(BIN)/python -m bench.verify
	$(BIN)/python -m bench.reframe
	$(BIN)/python -m bench.anchoring --apis 2
	$(BIN)/python -m bench.load

clean-var:
	rm -rf var

# The generator's shipped face-swap weights (carphone ← astronaut, float16) and swap.json beside
# them: fixed seed, one torch thread, 1834 steps (about 15 minutes on the shared 2-core machine;
# the 19.5-minute cap only guards a slower one). Byte-identical to the committed swap.pt.
.PHONY: swap-weights
swap-weights: setup
	$(BIN)/python -m generator.train --out generator/weights/swap.pt --steps 1834 --minutes 19.5 --seed 0 --threads 1

# The learned comparer's weights (detector/weights/): each `python -m detector.train` run takes
# under 30 min on this CPU; `python -m provenance.verify.gate` (detector.evaluate with the shipped
# PdqGridComparer beside it, both on the verifier's per-window path) then measures it on held-out
# footage and writes the evaluation.json `auto` reads. Shipped: the run with face-swap negatives
# from generator/weights/swap.pt (copied from with_swaps/), evaluated against the same recipe
# without them (without_swaps/), so its evaluation.json reports the figures before and after
# training with the generator's fakes.
.PHONY: detector-weights detector-weights-without-swaps
detector-weights: detector-weights-without-swaps
	$(BIN)/python -m detector.train --seed 0 --swaps on --out detector/weights/with_swaps
	$(BIN)/python -m provenance.verify.gate --weights detector/weights/with_swaps/model.pt \
		--before detector/weights/without_swaps/evaluation.json
	cp detector/weights/with_swaps/model.pt detector/weights/with_swaps/metrics.json \
		detector/weights/with_swaps/evaluation.json detector/weights/

detector-weights-without-swaps: setup
	$(BIN)/python -m detector.train --seed 0 --swaps off --out detector/weights/without_swaps
	$(BIN)/python -m provenance.verify.gate --weights detector/weights/without_swaps/model.pt
