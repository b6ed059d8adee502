"""Stage failures as errors that name the stage and the cause, never a traceback.

An unexpected exception inside a stage (a library's ValueError, a bad file) becomes a
`TrainingError` "<stage>: <cause>"; the traceback goes to `<run>/<stage>.error.log`
for whoever debugs it. Our own typed errors pass through unchanged (they already say
what is wrong), and so does Ctrl-C, which the CLI turns into "run it again to resume".
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from personae.daemon.errors import PersonaeError
from personae.training.errors import TrainingError

F = TypeVar("F", bound=Callable[..., Any])


def stage(name: str) -> Callable[[F], F]:
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except (PersonaeError, KeyboardInterrupt):
                raise
            except Exception as exc:
                log = Path(self.run.root) / f"{name}.error.log"
                try:
                    log.parent.mkdir(parents=True, exist_ok=True)
                    log.write_text(traceback.format_exc(), encoding="utf-8")
                    where = f" (traceback in {log})"
                except OSError:
                    where = ""
                raise TrainingError(
                    f"{name} stage failed: {type(exc).__name__}: {exc}{where}"
                ) from exc

        return run  # type: ignore[return-value]

    return wrap
