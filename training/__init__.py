"""personae.training: from source text to deployed, evaluated character adapters.

Stages (each a module, each runnable alone from `personae train`):

- `recipe`   the typed recipe file (YAML/TOML) describing a run
- `ingest`   txt/md/docx/pdf/epub -> cleaned chapters with provenance
- `dialogue` Strategy A: quoted speech with speaker attribution (`quotes` finds quotes)
- `rewrite`  Strategy B: narrative retold in the first person (rules or teacher)
- `qa`       Strategy C: grounded Q&A in the character's voice (teacher)
- `dataset`  chat JSONL, dedup, length limits, deterministic split, dataset card
- `fit`      TRL SFT with LoRA (CPU) or QLoRA (CUDA), early stopping, loss plot
- `store`    compatibility checks and installation into the daemon's adapter store
- `voice`    a distinct voice config per character
- `evaluate` perplexity and attribution accuracy, adapter vs base
- `export`   Axolotl, hosted fine-tuning JSONL, merged model
- `pipeline` the stages in order, resumable, in a run directory
- `stages`   the stage bodies the pipeline runs (extract, dataset, fit, evaluate, report)
"""
