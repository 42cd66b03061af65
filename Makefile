.PHONY: help install build-dev test lint bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' Makefile | sed 's/:.*## /\t/'

install:  ## create .venv and install kjob in editable mode with the test tools
	python3 -m venv .venv && . .venv/bin/activate && pip install -U pip && pip install -e '.[test]'

build-dev:  ## rebuild the extension into the venv (debug)
	. .venv/bin/activate && maturin develop

test:  ## Rust and Python tests
	cargo test && . .venv/bin/activate && pytest

lint:  ## formatting, clippy, ruff, mypy --strict
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	. .venv/bin/activate && ruff check python tests benches && mypy python/kjob tests && python -m mypy.stubtest kjob._kjob

bench:  ## spawn throughput against xargs -P and a Python subprocess loop
	. .venv/bin/activate && maturin develop --release && python benches/spawn_bench.py
