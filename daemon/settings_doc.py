"""docs/settings.md, generated from the settings model: every field with its
environment variable, type, default and description, in the sections of settings.py.

Run `personae config docs > docs/settings.md` (or `python -m personae.daemon.settings_doc`)
after changing a field; tests/cli/test_settings_doc.py fails while the two differ.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from personae.daemon.settings import Settings

HEADER = """\
# Settings

<!-- Generated from daemon/settings.py by `personae config docs`; do not edit by hand. -->

The daemon reads one typed settings object. Set a field by environment variable
(`PERSONAE_<FIELD>`; a nested value with `__`, e.g. `PERSONAE_DEPLOY_MIN_METRICS__EVAL_LOSS=1.2`)
or in a TOML file named by `PERSONAE_CONFIG` or `personae serve --config FILE`, with the
field's name as the key (`port = 9000`). The environment wins over the file.
`personae config show` prints the values in effect and where each came from.
"""

_SECTION = re.compile(r"^    # --- (.+?) ---")
_FIELD = re.compile(r"^    (\w+): ")
_BOUNDS = ((Ge, "ge", "≥"), (Gt, "gt", ">"), (Le, "le", "≤"), (Lt, "lt", "<"))


def _sections() -> dict[str, str]:
    """field -> the `# --- section ---` comment above it in settings.py."""
    out, section = {}, "general"
    for line in inspect.getsource(Settings).splitlines():
        if m := _SECTION.match(line):
            section = m.group(1)
        elif (m := _FIELD.match(line)) and m.group(1) in Settings.model_fields:
            out[m.group(1)] = section
    return out


def type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    # "pathlib.Path | None" -> "Path | None", "typing.Literal[...]" -> "Literal[...]"
    return re.sub(r"\b(?:[a-z_]+\.)+(\w+)", r"\1", str(annotation))


def _bounds(field: FieldInfo) -> str:
    parts = []
    for meta in field.metadata:
        for kind, attr, sign in _BOUNDS:
            if isinstance(meta, kind):
                parts.append(f"{sign} {getattr(meta, attr)}")
    return ", ".join(parts)


def _value(value: Any) -> str:
    if value is None:
        return "*unset*"
    if value in ((), {}, []):
        return "*empty*"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def default(field: FieldInfo) -> str:
    factory = field.default_factory
    if factory is not None:
        # our own factories say in their docstring what they compute (machine-specific)
        if inspect.isfunction(factory) and inspect.getdoc(factory):
            return inspect.getdoc(factory) or ""
        return _value(factory())  # type: ignore[call-arg]
    if field.default is PydanticUndefined:
        return "required"
    return _value(field.default)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")


def render() -> str:
    sections = _sections()
    lines = [HEADER]
    current = None
    for name, field in Settings.model_fields.items():
        section = sections.get(name, "general")
        if section != current:
            current = section
            lines += [
                f"\n## {section[0].upper()}{section[1:]}\n",
                "| Field | Environment | Type | Default | Description |",
                "|---|---|---|---|---|",
            ]
        kind = type_name(field.annotation)
        if bounds := _bounds(field):
            kind += f" ({bounds})"
        lines.append(
            f"| `{name}` | `PERSONAE_{name.upper()}` | {_cell(kind)} | {_cell(default(field))} "
            f"| {_cell(field.description or '')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    print(render(), end="")


if __name__ == "__main__":
    main()
