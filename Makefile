.PHONY: help install build-dev test lint format bench wheel

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

# The tools `make wheel` installs into .venv: maturin links through zig (ziglang, from PyPI) for
# an old glibc, so the wheel's manylinux2014 tag holds whatever glibc this machine has.
WHEEL_TOOLS = 'maturin>=1.9.4,<2' 'ziglang>=0.13'

wheel:  ## dist/: an abi3 manylinux2014 wheel (no Rust needed to install it) and the sdist
	rm -rf dist
	. .venv/bin/activate && pip install -q $(WHEEL_TOOLS) \
	    && maturin build --release --zig --compatibility manylinux2014 --out dist \
	    && maturin sdist --out dist
