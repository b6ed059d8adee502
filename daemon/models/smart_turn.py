"""Smart Turn v3.2, the end-of-turn model, from the `pipecat-ai` wheel (BSD-2-Clause).

Only its data file is used: scripts/setup.sh installs `pipecat-ai==1.14.0` with
`--no-deps` (its dependencies are a whole framework), and the file is found without
importing pipecat.
"""

from __future__ import annotations

from pathlib import Path

from personae.daemon.errors import ModelNotFoundError
from personae.daemon.models import package_dir

PACKAGE = "pipecat-ai==1.14.0"
FILE = "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"


def smart_turn_path() -> Path:
    """The bundled ONNX file; ModelNotFoundError when pipecat-ai is not installed."""
    try:
        path = package_dir("pipecat") / FILE
    except ModelNotFoundError:
        raise ModelNotFoundError(
            f"the end-of-turn model needs {PACKAGE}: pip install --no-deps {PACKAGE}"
        ) from None
    if not path.is_file():
        raise ModelNotFoundError(
            f"{path} is missing: reinstall with pip install --no-deps {PACKAGE}"
        )
    return path
