"""One distribution, `personae`, whose sub-packages live in top-level folders.

`sdk/` installs as `personae.sdk`, `daemon/` as `personae.daemon`, `training/` as
`personae.training` (design.md): a generic top-level `daemon` module is already taken.
"""

from setuptools import find_packages, setup

ROOTS = {"sdk": "personae.sdk", "daemon": "personae.daemon", "training": "personae.training"}


def _packages() -> list[str]:
    found = find_packages(include=[f"{root}*" for root in ROOTS])
    out = []
    for pkg in found:
        head, _, tail = pkg.partition(".")
        if head in ROOTS:
            out.append(ROOTS[head] + (f".{tail}" if tail else ""))
    return out


setup(packages=_packages(), package_dir={name: folder for folder, name in ROOTS.items()})
