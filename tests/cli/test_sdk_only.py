"""`personae` with the SDK's dependencies alone: fast help, and the extra to install."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

#: run in a fresh interpreter where the daemon and training extras are not installed
SDK_ONLY = textwrap.dedent(
    """
    import importlib.abc, sys

    EXTRAS = {"fastapi", "uvicorn", "pydantic_settings", "numpy", "torch", "yaml",
              "transformers", "peft", "trl", "datasets", "sqlalchemy", "onnxruntime"}

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in EXTRAS:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    from personae.sdk.cli import main
    sys.argv = ["personae", *sys.argv[1:]]
    main()
    """
)


def personae_sdk_only(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SDK_ONLY, *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_command_without_the_extras() -> None:
    result = personae_sdk_only("--help")
    assert result.returncode == 0, result.stderr
    for command in ("serve", "chat", "train", "characters", "bench", "config"):
        assert command in result.stdout


def test_serve_names_the_daemon_extra() -> None:
    result = personae_sdk_only("serve")
    assert result.returncode == 2
    assert "pip install 'personae[daemon]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_and_keys_name_the_daemon_extra() -> None:
    for args in (("config", "show"), ("keys", "list")):
        result = personae_sdk_only(*args)
        assert result.returncode == 2, args
        assert "pip install 'personae[daemon]'" in result.stderr, args


def test_train_names_the_training_extra(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: x\n")
    result = personae_sdk_only("train", "run", str(recipe))
    assert result.returncode == 2
    assert "personae[training]" in result.stderr and "Traceback" not in result.stderr


def test_help_does_not_import_the_heavy_packages() -> None:
    code = (
        "import sys; from personae.sdk.cli import load_commands; load_commands(); "
        "print(sorted(m for m in ('torch', 'numpy', 'fastapi', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_sdk_imports_only_itself() -> None:
    sdk = Path(__file__).resolve().parents[2] / "sdk"
    for path in sorted(sdk.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not name.startswith(("personae.daemon", "personae.training")), (
                    f"{path.name} imports {name}"
                )
