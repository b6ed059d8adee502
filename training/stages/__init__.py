"""The bodies of a training run's stages; `pipeline.Pipeline` runs them in order.

- `fingerprint` what a stage's inputs hash to: a stage is skipped when it is unchanged
- `extract`     examples from the chapters: dialogue, scripts, lore, then `rewrite` and
                `qa` (the teacher-driven strategies, saved item by item)
- `dataset`     per-character chat datasets, held-out questions kept out
- `fit`         a LoRA adapter per character, checked and installed in the store
- `evaluate`    perplexity, attribution and the question sets
- `report`      the run's report.md

Ingest stays in `pipeline.py`, beside the chapters every later stage reads.
"""
