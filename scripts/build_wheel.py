"""Build personae's wheel from the files a clone of this checkout has; print its path.

    .venv/bin/python scripts/build_wheel.py OUTDIR

The tree is copied first (git's tracked and not-ignored files), so what an earlier
build left in build/ or an ignored folder can never slip into the wheel. Builds with
the running environment's setuptools (the dev extras), without the network.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def clone_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    # a tracked file deleted in the working tree is listed but not there
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def build(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="personae-wheel-") as tmp:
        src, dist = Path(tmp, "src"), Path(tmp, "dist")
        for name in clone_files():
            target = src / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        subprocess.run(
            [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", str(src), "-w", str(dist)],
            check=True,
        )
        (built,) = dist.glob("personae-*.whl")
        return Path(shutil.move(built, out / built.name))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(build(Path(sys.argv[1])))
