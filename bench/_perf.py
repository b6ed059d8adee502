"""Helpers shared by the performance benchmarks (adapter_switch, throughput, routing, engines)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from personae.daemon.adapters.files import WEIGHTS_FILE

# spinning OpenMP threads make torch several times slower on a busy CPU
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).parent / "results"
QUESTIONS = [
    "Who are you?",
    "What do you sell here?",
    "Have you heard any rumours about the old mill?",
    "Can you fix my sword before nightfall?",
    "Where can I find a map of the river?",
    "What happened to the bridge last winter?",
    "Do you know the captain of the guard?",
    "Tell me about this town.",
]
SYSTEM = (
    "You are {name}, who has kept a stall in the market square for twenty years. "
    "Personality: blunt, warm underneath, proud of honest work. Speaking style: short "
    "sentences, a country accent. Scenario: a traveller stops at your stall at dusk. "
    "Stay in character. Answer in one to three short spoken sentences, no lists."
)


def machine(device: str = "cpu") -> dict[str, Any]:
    load = os.getloadavg()
    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "system": platform.system(),
        "python": sys.version.split()[0],
        "load_avg_1_5_15": [round(x, 2) for x in load],
    }
    if device.startswith("cuda"):
        import torch

        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda
    return info


def describe(info: dict[str, Any]) -> str:
    gpu = f"{info['gpu']} (CUDA {info['cuda']}), " if "gpu" in info else ""
    return (
        f"{gpu}{info['cpu']}, {info['cores']} cores, {info['system']}, "
        f"load average {info['load_avg_1_5_15'][0]:.1f} at start"
    )


#: randomly initialised Llama shapes for serving benchmarks where no trained weights of
#: that size ship offline: "llama-1b" is Llama 3.2 1B's layout (1.1B parameters here,
#: with the bundled tokenizer's 49k vocabulary instead of 128k)
RANDOM_LLAMAS: dict[str, dict[str, int]] = {
    "llama-1b": {
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
    },
    "llama-tiny": {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
}


def random_llama(tokenizer_dir: Path, root: Path, size: str, *, device: str = "cpu") -> Path:
    """A randomly initialised Llama checkpoint at `root/size`, with the bundled tokenizer.

    Serving cost depends on the shapes only; saved in bfloat16 on a GPU, float32 on a CPU.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = root / size
    if (out / "config.json").is_file():
        return out
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        **RANDOM_LLAMAS[size],
        vocab_size=len(tokenizer),
        max_position_embeddings=8192,
        rope_theta=500000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    print(f"random {size}: {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B parameters")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def save(name: str, data: dict[str, Any], plot: Callable[[Any], None]) -> None:
    """bench/results/<name>.json and <name>.png (plot draws on a matplotlib figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1))
    fig = plt.figure(figsize=(10, 4.5))
    plot(fig)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=120)
    print(f"wrote {RESULTS / (name + '.json')} and {name}.png")


def many_adapters(base_dir: Path, root: Path, count: int, *, rank: int = 8) -> list[Path]:
    """`count` LoRAs with the shapes training produces (q_proj, v_proj), small random weights.

    Serving cost depends only on the shapes; small weights keep replies near the base's,
    so every configuration decodes about as many tokens. Made once per root.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    paths = [root / f"r{rank}-{i:02d}" for i in range(count)]
    if all((p / WEIGHTS_FILE).is_file() for p in paths):
        return paths
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(
        r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]
    )
    peft_model = get_peft_model(model, config)
    for i, path in enumerate(paths):
        torch.manual_seed(i)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0.0, 0.02)
                elif "lora_A" in name:
                    torch.nn.init.kaiming_uniform_(param, a=5**0.5)
        peft_model.save_pretrained(path)
    return paths
