"""`personae eval`: a character's held-out questions against a live engine, scored.

    questions (eval/<id>.toml) ─► replies in three conditions ─► scores ─► report + plot
    (questions.py)                (replies.py, run.py)            (scoring.py) (report.py)

The training run's evaluation stage calls the same code (`stage.py`). Nothing is
imported here: `personae --help` loads `cli.py` only, which imports typer and rich.
"""
