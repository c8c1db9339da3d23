# The two commands of the README's quick start, plus the pieces they are made of.
# `make run` and `make test` do all set-up themselves (scripts/setup is idempotent).

CARGO ?= cargo

.PHONY: run test setup build lint bench

## Set up, build, and run the control plane on its embedded defaults (Ctrl-C stops it).
run: setup
	$(CARGO) run --release --locked -p hatchery-cli -- providers check
	$(CARGO) run --release --locked -p hatchery-cli -- serve

## Set up, then run the whole test suite (what CI runs).
test: setup
	./scripts/test

setup:
	./scripts/setup

build:
	$(CARGO) build --release --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

## Benchmarks (criterion and `hatchery bench`); figures go to docs/benchmarks.md.
bench:
	$(CARGO) bench --locked -p hatchery-registry --bench derive
	$(CARGO) run --release --locked -p hatchery-cli -- bench api
	$(CARGO) run --release --locked -p hatchery-cli -- bench heartbeats
	$(CARGO) run --release --locked -p hatchery-cli -- bench events
	$(CARGO) run --release --locked -p hatchery-cli -- bench create-online
	$(CARGO) run --release --locked -p hatchery-cli -- bench a2a
