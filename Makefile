# qlife — the two set-up commands are `make run` (main job) and `make test` (default suite).
# Every target creates .venv when missing and installs pinned versions (constraints.txt), torch first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export TOKENIZERS_PARALLELISM := false
export HF_HUB_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_API_URL ?= http://127.0.0.1:4200/api

.PHONY: install run test test-slow serve ui bench decoder lint lock clean braket-env

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e .
	touch $(STAMP)

install: $(STAMP)

# [PROFILE=quick|full: set params.yaml's profile first (qlife.cli profile); it stays], check params, `dvc repro`
# inside one MLflow pipeline run, then promote (registry + champion gate), the
# summary and reports/energy.md (qlife/pipeline.py); a failed stage closes the pipeline run FAILED, promotes nothing
run: $(STAMP)
	$(if $(PROFILE),$(PY) -m qlife.cli profile $(PROFILE))
	$(PY) -m qlife.cli check
	$(PY) -m qlife.cli run

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# the Prefect server and both flows on their schedules: `make serve [PORT=4200]`
serve: $(STAMP)
	QLIFE_PREFECT_PORT=$(or $(PORT),4200) $(PY) -m flows.serve

# the MLflow UI: `make ui [PORT=5000]`
ui: $(STAMP)
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port $(or $(PORT),5000)

# serve a registered model over HTTP: `make serve-model NAME=qlife-student [ALIAS=champion | VERSION=n] [PORT=5001]
# [MAX_TEXTS=256] [MAX_TEXT_BYTES=65536]` (qlife.promote.serve: the store is params.yaml's tracking.uri; with
# neither ALIAS nor VERSION, the champion, else the newest version, saying which and why; an unknown model,
# version or alias, or a busy port is a sentence and exit 1; the limits: qlife/serving.py)
.PHONY: serve-model
serve-model: PORT ?= 5001
serve-model: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make serve-model NAME=<registered model> [ALIAS=champion | VERSION=n] [PORT=5001]" >&2; exit 2; }
	@$(PY) -m qlife.promote serve --name "$(NAME)" --alias "$(ALIAS)" --version "$(VERSION)" --port "$(PORT)" \
	  --max-texts "$(MAX_TEXTS)" --max-text-bytes "$(MAX_TEXT_BYTES)"

# isolated interpreter for Amazon Braket (qlife/quantum/braket.py runs braket_worker.py with it): the SDK and its
# local simulator pin cloudpickle/antlr4 versions that clash with .venv, so they get their own venv
BRAKET_VENV := .venv-braket
BRAKET_STAMP := $(BRAKET_VENV)/.installed

$(BRAKET_STAMP): constraints-braket.txt
	test -x $(BRAKET_VENV)/bin/python || python3 -m venv $(BRAKET_VENV)
	$(BRAKET_VENV)/bin/python -m pip install -q -c constraints-braket.txt amazon-braket-sdk amazon-braket-default-simulator
	touch $(BRAKET_STAMP)

braket-env: $(BRAKET_STAMP)

# a small Llama trained here (no package ships decoder weights), then the whole pipeline with it as teacher
decoder: $(STAMP)
	$(PY) -m bench.decoder

.PHONY: readme
# after `make run` on the default corpus: its verdicts (bench/results/default_run.json), then README.md's generated
# blocks (tests/test_readme.py fails when they and the JSON disagree)
readme: $(STAMP)
	$(PY) -m qlife.readme snapshot
	$(PY) -m qlife.readme

bench: $(STAMP)
	test ! -f bench/requirements.txt || $(PY) -m pip install -q -c constraints.txt -r bench/requirements.txt
	$(PY) -m bench

lint: $(STAMP)
	ruff check qlife stages flows tests bench

lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | sed 's/^torch==.*/torch==2.13.0/' > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf data/curated data/live data/encoded data/search data/models data/features data/monitor \
	  metrics/*.json reports/summary.md reports/plots $(BRAKET_VENV)
