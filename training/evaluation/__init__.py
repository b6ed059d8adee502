"""`personae eval`: a character's held-out questions against a live engine, scored.

    questions (eval/<id>.toml) ─► replies in three conditions ─► scores ─► report + plot
                                  adapter+prompt, prompt only, base

The training run's evaluation stage scores its replies with the same code
(`scoring.score_reply`, `StyleClassifier` from `training.evaluate`).
"""

from personae.training.evaluation.questions import Question, QuestionSet, load_questions
from personae.training.evaluation.scoring import ReplyScore, score_reply, summarize

__all__ = [
    "Question",
    "QuestionSet",
    "ReplyScore",
    "load_questions",
    "score_reply",
    "summarize",
]
