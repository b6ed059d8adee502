"""What scripts/setup.sh still has to install into a virtual environment, and why.

Run with that environment's Python; it reads only installed metadata, so it is quick
and needs no network. Each line of output is `WHAT<TAB>reason`, where WHAT is a
requirement given on the command line (`torch==2.13.0`) or `personae`; nothing is
printed when everything is in place.

    python scripts/missing_packages.py --extras daemon,piper [--editable DIR] [REQ ...]

`personae` is reported when it is not installed, when an editable install points at
another folder, when its version or entry points differ from pyproject.toml's (the
installed metadata is then stale), or when one of its requirements for the extras is
not satisfied.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from importlib import metadata
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # a fresh environment has pip, which vendors packaging
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def installed(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def unsatisfied(req: Requirement, seen: set[str] | None = None) -> str | None:
    """Why `req` is not satisfied (recursing into the extras it asks for), or None."""
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        return None
    dist = installed(req.name)
    if dist is None:
        return f"{req.name} is not installed"
    if not req.specifier.contains(dist.version, prereleases=True):
        return f"{req.name} {dist.version} does not satisfy {req.specifier}"
    seen = seen if seen is not None else set()
    for extra in sorted(req.extras - seen):
        seen.add(extra)
        for line in dist.requires or ():
            sub = Requirement(line)
            if sub.marker is not None and sub.marker.evaluate({"extra": extra}):
                sub.marker = None
                why = unsatisfied(sub, seen)
                if why:
                    return f"{why} (for {req.name}[{extra}])"
    return None


def entry_points(project: dict) -> set[tuple[str, str, str]]:
    groups = {"console_scripts": project.get("scripts", {}), **project.get("entry-points", {})}
    return {(g, name, value) for g, table in groups.items() for name, value in table.items()}


def personae_missing(extras: list[str], editable: Path | None) -> str | None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dist = installed("personae")
    if dist is None:
        return "not installed"
    if editable is not None:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
        if not direct.get("dir_info", {}).get("editable"):
            return "installed, but not in editable mode"
        if direct.get("url") != editable.resolve().as_uri():
            return f"installed in editable mode from {direct.get('url')}"
    if dist.version != project["version"]:
        return f"installed version {dist.version}, pyproject.toml says {project['version']}"
    if {(e.group, e.name, e.value) for e in dist.entry_points} != entry_points(project):
        return "its commands or entry points changed in pyproject.toml"
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"unknown extras: {', '.join(unknown)}")
    wanted = list(project.get("dependencies", []))
    for extra in extras:
        wanted += optional[extra]
    for line in wanted:
        why = unsatisfied(Requirement(line))
        if why:
            return why
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="", help="comma-separated extras of personae")
    parser.add_argument("--editable", type=Path, help="the checkout personae is installed from")
    parser.add_argument("requirements", nargs="*", help="further requirements, e.g. torch==2.13.0")
    args = parser.parse_args()
    for line in args.requirements:
        why = unsatisfied(Requirement(line))
        if why:
            print(f"{canonicalize_name(Requirement(line).name)}\t{why}")
    extras = [e for e in args.extras.split(",") if e]
    why = personae_missing(extras, args.editable)
    if why:
        print(f"personae\t{why}")


if __name__ == "__main__":
    main()
