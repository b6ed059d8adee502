# The two commands of the README.
.PHONY: run test lint bench

run:  ## set up, then serve the default cast on ws://127.0.0.1:8765/v1/realtime
	scripts/setup.sh
	.venv/bin/personae serve

test:  ## set up with dev extras, check the built wheel installs and serves, run the whole test suite
	scripts/setup.sh --dev
	scripts/ci-wheel.sh
	scripts/test.sh

lint:
	.venv/bin/ruff check .

bench:
	.venv/bin/personae bench voice_to_voice
