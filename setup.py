"""One distribution, `personae`, whose sub-packages live in top-level folders.

`sdk/` installs as `personae.sdk`, `daemon/` as `personae.daemon`, `training/` as
`personae.training` (design.md): a generic top-level `daemon` module is already taken.

Every folder that holds Python modules is a package here, `__init__.py` or not:
discovery by `__init__.py` alone silently left a folder out of the wheel once
(tests/packaging checks the built wheel against the tree).
"""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
ROOTS = {"sdk": "personae.sdk", "daemon": "personae.daemon", "training": "personae.training"}


def _packages() -> list[str]:
    found = []
    for folder, name in ROOTS.items():
        root = HERE / folder
        for path in sorted({root, *(p.parent for p in root.rglob("*.py"))}):
            parts = path.relative_to(root).parts
            if "__pycache__" not in parts:
                found.append(".".join((name, *parts)))
    return found


setup(packages=_packages(), package_dir={name: folder for folder, name in ROOTS.items()})
