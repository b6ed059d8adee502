# The two commands of the README.
.PHONY: run test lint bench

run:  ## set up, then serve the default cast on ws://127.0.0.1:8765/v1/realtime
	scripts/setup.sh
	.venv/bin/personae serve

test:  ## set up with dev extras, run the whole test suite, then the built wheel's own check
	scripts/setup.sh --dev
	scripts/test.sh
	scripts/ci-wheel.sh

lint:
	.venv/bin/ruff check .

bench:
	.venv/bin/personae bench voice_to_voice
