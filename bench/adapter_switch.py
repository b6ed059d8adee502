"""Adapter switching on the transformers engine: hotswap vs set_adapter vs reloading.

At LoRA ranks 8, 16 and 64 (q_proj + v_proj on the bundled SmolLM2-135M), measures
the time to make another character's adapter the one the model wears:

- copy:        the new weights in CPU memory, mapped once to the resident tensors and
               copied with `Tensor.copy_` (what hotswap does, without PEFT's per-call
               name matching and checks);
- hotswap_memory: the new weights already in CPU memory (the adapter cache's second
               tier), copied into the resident adapter's tensors
               (`hotswap_adapter_from_state_dict`);
- hotswap:     `peft.utils.hotswap.hotswap_adapter` from the folder: config check, file
               read and copy;
- set_adapter: both adapters resident, `model.set_adapter(name)` (no file read; costs
               memory per resident adapter);
- reload:      `delete_adapter` + `load_adapter` from disk (module surgery).

Then the engines' own `swap_adapter` (validation included): both transformers engines
copy into the mapped tensors, validate a folder once while its files are unchanged and
keep the weights read by the last few validations, so a swap to a version already
checked is a copy. "engine swap (new folder)" swaps to a folder the engine has never
seen: it pays the file read and the validation (~15 ms) every time. All against the
engine's own unload + load. The mixed-batch engine (transformers-batched) needs no
switch per request: all adapters stay resident and each row names its own. Prints medians, writes JSON and PNG.

    personae bench adapter_switch [--repeats 10] [--ranks 8,16,64]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import _perf

from personae.daemon.adapters.files import WEIGHTS_FILE

METHODS = ["copy", "hotswap_memory", "hotswap", "set_adapter", "reload"]
#: the same switch through the engines' own API (folder in, validation included)
ENGINE_METHODS = [
    "engine swap (transformers)",
    "engine swap (batched)",
    "engine swap (new folder)",
    "engine reload",
]


def measure(base_dir: Path, paths: list[Path], repeats: int) -> dict[str, list[float]]:
    import torch
    from peft import LoraConfig, PeftModel
    from peft.utils import load_peft_weights
    from peft.utils.hotswap import (
        _insert_adapter_name_into_state_dict,
        hotswap_adapter,
        hotswap_adapter_from_state_dict,
    )
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    model = PeftModel.from_pretrained(base, str(paths[0]), adapter_name="a")
    model.load_adapter(str(paths[1]), adapter_name="b")
    memory = [
        (
            _insert_adapter_name_into_state_dict(
                load_peft_weights(str(p), device="cpu"), adapter_name="a", parameter_prefix="lora_"
            ),
            LoraConfig.from_pretrained(str(p)),
        )
        for p in paths
    ]
    params = dict(model.named_parameters())
    mapped = [[(params[k], v) for k, v in state.items() if k in params] for state, _ in memory]
    assert all(len(m) == len(memory[0][0]) for m in mapped), "state dict names do not match"
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    for i in range(repeats):
        started = time.perf_counter()
        with torch.no_grad():
            for param, value in mapped[i % 2 == 0]:
                param.copy_(value)
        times["copy"].append(time.perf_counter() - started)

        target = paths[i % 2 == 0]  # alternate, so every swap changes the weights
        model.set_adapter("a")
        state, config = memory[i % 2 == 0]
        started = time.perf_counter()
        hotswap_adapter_from_state_dict(model, state, adapter_name="a", config=config)
        times["hotswap_memory"].append(time.perf_counter() - started)

        started = time.perf_counter()
        hotswap_adapter(model, str(target), adapter_name="a", torch_device="cpu")
        times["hotswap"].append(time.perf_counter() - started)

        started = time.perf_counter()
        model.set_adapter("b" if i % 2 == 0 else "a")
        times["set_adapter"].append(time.perf_counter() - started)

        model.set_adapter("a")
        started = time.perf_counter()
        model.delete_adapter("b")
        model.load_adapter(str(target), adapter_name="b")
        times["reload"].append(time.perf_counter() - started)
    return times


def measure_engines(base_dir: Path, paths: list[Path], repeats: int) -> dict[str, list[float]]:
    from personae.daemon.engines.llm_batched import BatchedTransformersLLM
    from personae.daemon.engines.llm_transformers import TransformersLLM

    times: dict[str, list[float]] = {m: [] for m in ENGINE_METHODS}
    plain = TransformersLLM(model_dir=base_dir)
    batched = BatchedTransformersLLM(model_dir=base_dir)
    # its own engine: swapping to new folders pushes the others out of its staged weights
    cold = TransformersLLM(model_dir=base_dir)
    try:
        for engine in (plain, batched, cold):
            engine.load_adapter("a", paths[0])
            engine.load_adapter("keep", paths[1])  # unloading "a" then leaves a PeftModel
        for i in range(repeats):
            target = paths[i % 2 == 0]
            for engine, method in ((plain, ENGINE_METHODS[0]), (batched, ENGINE_METHODS[1])):
                started = time.perf_counter()
                engine.swap_adapter("a", target)
                times[method].append(time.perf_counter() - started)
            fresh = Path(tempfile.mkdtemp(dir=target.parent))
            shutil.copytree(target, fresh, dirs_exist_ok=True)
            started = time.perf_counter()
            cold.swap_adapter("a", fresh)
            times["engine swap (new folder)"].append(time.perf_counter() - started)
            started = time.perf_counter()
            plain.unload_adapter("a")
            plain.load_adapter("a", target)
            times["engine reload"].append(time.perf_counter() - started)
    finally:
        batched.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--ranks", default="8,16,64")
    args = ap.parse_args()
    from personae.daemon.models.smollm2 import base_model_dir
    from personae.daemon.settings import Settings

    info = _perf.machine()
    base_dir = base_model_dir(Settings())
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rank in (int(r) for r in args.ranks.split(",")):
            paths = _perf.many_adapters(base_dir, Path(tmp), 2, rank=rank)
            times = measure(base_dir, paths, args.repeats)
            times.update(measure_engines(base_dir, paths, args.repeats))
            size = (paths[0] / WEIGHTS_FILE).stat().st_size
            results[str(rank)] = {
                "adapter_bytes": size,
                **{
                    m: {"median_ms": _perf.median(t) * 1e3, "samples_ms": [x * 1e3 for x in t]}
                    for m, t in times.items()
                },
            }
    columns = [*METHODS, *ENGINE_METHODS]
    print(f"\nadapter switching (median ms of {args.repeats}), {_perf.describe(info)}")
    print(f"{'rank':>5}{'file KB':>9}" + "".join(f"{m[:26]:>28}" for m in columns))
    for rank, res in results.items():
        print(
            f"{rank:>5}{res['adapter_bytes'] / 1024:>9.0f}"
            + "".join(f"{res[m]['median_ms']:>28.2f}" for m in columns)
        )
    print("\nreload over each switch (how many times faster the switch is than reloading)")
    pairs = {
        "PEFT hotswap": ("reload", "hotswap"),
        "PEFT hotswap, weights in memory": ("reload", "hotswap_memory"),
        "copy": ("reload", "copy"),
        "engine swap (transformers)": ("engine reload", "engine swap (transformers)"),
        "engine swap (batched)": ("engine reload", "engine swap (batched)"),
        "engine swap (new folder)": ("engine reload", "engine swap (new folder)"),
    }
    for rank, res in results.items():
        res["speedups"] = {
            label: res[slow]["median_ms"] / res[fast]["median_ms"]
            for label, (slow, fast) in pairs.items()
        }
        print(
            f"  rank {rank:>3}: "
            + ", ".join(f"{label} {x:.1f}x" for label, x in res["speedups"].items())
        )
    print("target: hotswap at least 20x faster than reloading")

    def plot(fig) -> None:
        ax = fig.add_subplot()
        columns = [*METHODS, *ENGINE_METHODS]
        width = 0.8 / len(columns)
        ranks = list(results)
        for k, method in enumerate(columns):
            ax.bar(
                [i + (k - (len(columns) - 1) / 2) * width for i in range(len(ranks))],
                [results[r][method]["median_ms"] for r in ranks],
                width,
                label=method,
            )
        ax.set_xticks(range(len(ranks)), [f"rank {r}" for r in ranks])
        ax.set_yscale("log")
        ax.set_ylabel("ms to switch (median, log scale)")
        ax.set_title(f"adapter switching, SmolLM2-135M q/v LoRA ({info['cores']} cores, loaded)")
        ax.legend(fontsize=7, ncol=2)

    _perf.save("adapter_switch", {"machine": info, "results": results}, plot)


if __name__ == "__main__":
    main()
