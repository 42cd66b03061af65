.PHONY: help install build-dev test lint format bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' Makefile | sed 's/:.*## /\t/'

install:  ## create .venv and install kjob in editable mode with the test tools
	python3 -m venv .venv && . .venv/bin/activate && pip install -U pip && pip install -e '.[test]'

build-dev:  ## rebuild the extension into the venv (debug)
	. .venv/bin/activate && maturin develop

test:  ## Rust and Python tests
	cargo test && . .venv/bin/activate && pytest

lint:  ## what CI checks (.ci/lint): cargo fmt --check, clippy -D warnings, ruff check, ruff format --check, mypy --strict, stubtest
	.ci/lint

format:  ## format the Rust and Python trees (cargo fmt, ruff format)
	cargo fmt
	. .venv/bin/activate && ruff format python tests benches

bench:  ## spawn throughput against xargs -P and a Python subprocess loop
	. .venv/bin/activate && maturin develop --release && python benches/spawn_bench.py
