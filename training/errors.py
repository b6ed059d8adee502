"""Errors of the training pipeline. Each names the file, character or setting at fault.

    PersonaeError (personae.daemon.errors)
    └── ConfigError
        └── TrainingError
            ├── RecipeError        the recipe file or one of its settings is wrong
            ├── SourceError        a source file is empty, corrupt or of an unsupported kind
            ├── CharacterDataError a target character yields no usable lines
            ├── TeacherError       the teacher endpoint is down or answers nonsense
            └── AdapterCompatError an adapter the daemon could not hot-swap onto its base

A failing stage never deletes what earlier stages (or earlier items of the same stage)
wrote to the run directory; run the same command again to resume.
"""

from __future__ import annotations

from personae.daemon.errors import ConfigError


class TrainingError(ConfigError):
    code = "training_error"


class RecipeError(TrainingError):
    code = "recipe_error"


class SourceError(TrainingError):
    code = "source_error"


class CharacterDataError(TrainingError):
    code = "character_data_error"


class TeacherError(TrainingError):
    code = "teacher_error"
    retryable = True


class AdapterCompatError(TrainingError):
    code = "adapter_incompatible"
