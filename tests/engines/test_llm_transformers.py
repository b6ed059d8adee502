"""The transformers LLM engine: real SmolLM2 base, real LoRA adapters trained here.

References come from plain transformers + PEFT (`PeftModel.from_pretrained` and
`generate`), so the engine's own decode loop, adapter routing and hotswap are checked
against the libraries' answer, not against themselves.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from personae.daemon.characters import GenerationParams
from personae.daemon.engines.base import ChatMessage, GenerationRequest
from personae.daemon.engines.llm_transformers import TransformersLLM
from personae.daemon.engines.sampling import StopScanner
from personae.daemon.errors import ConfigError, EngineError
from personae.daemon.models import smollm2
from personae.daemon.testing.tiny_adapter import train_tiny_adapter

QUESTION = [ChatMessage("user", "Who are you?")]
GREEDY = GenerationParams(temperature=0.0, max_tokens=10, repetition_penalty=1.1)
# enough tokens to tell the smith adapter's reply from the base's
SHORT = GREEDY.model_copy(update={"max_tokens": 4})
SMITH = "Aye, the forge burns hot and my hammer is ready."
SMITH_V2 = "Steel sings when I strike it, traveller."
LIBRARIAN = "Hush now, the old books are sleeping."


def reply(engine, adapter=None, *, params=GREEDY, messages=QUESTION, seed=None) -> str:
    request = GenerationRequest(messages=messages, params=params, adapter=adapter, seed=seed)
    return "".join(engine.generate(request, threading.Event()))


def reference(base_dir: Path, adapter_dir: Path | None, params=GREEDY, messages=QUESTION) -> str:
    """Greedy reply from a fresh transformers (+ PEFT) load, via generate()."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
    chat = [{"role": m.role, "content": m.content} for m in messages]
    prompt = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(
            **ids,
            do_sample=False,
            max_new_tokens=params.max_tokens,
            repetition_penalty=params.repetition_penalty,
        )
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def _short(engine, adapter, refs, ref_name=None) -> bool:
    """A 4-token greedy reply is the start of the full reference reply (greedy is prefix-stable)."""
    text = reply(engine, adapter, params=SHORT)
    return bool(text) and refs[ref_name or adapter or "base"].startswith(text)


# --- fixtures: the model loads once per module, adapters are trained once ---


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Decode on one thread: on a shared 2-core box, two OpenMP threads competing with
    other processes spin and ran these tests ~6x slower (10 min against 1m40)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base_dir(settings):
    return smollm2.base_model_dir(settings)


@pytest.fixture(scope="module")
def engine(base_dir):
    return TransformersLLM(model_dir=base_dir)


@pytest.fixture(scope="module")
def adapter_dirs(base_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return {
        name: train_tiny_adapter(base_dir, root / name, text=text, steps=6, seed=i)
        for i, (name, text) in enumerate(
            [("smith", SMITH), ("librarian", LIBRARIAN), ("smith_v2", SMITH_V2)]
        )
    }


@pytest.fixture(scope="module")
def refs(base_dir, adapter_dirs):
    refs = {"base": reference(base_dir, None)}
    refs.update({name: reference(base_dir, path) for name, path in adapter_dirs.items()})
    return refs


@pytest.fixture(scope="module")
def loaded(engine, adapter_dirs):
    engine.load_adapter("smith", adapter_dirs["smith"])
    engine.load_adapter("librarian", adapter_dirs["librarian"])
    return engine


# --- real model ---


@pytest.mark.models
def test_adapter_reply_matches_fresh_peft_load_and_differs_from_base(loaded, refs):
    assert reply(loaded) == refs["base"]
    assert reply(loaded, "smith") == refs["smith"]
    assert refs["smith"] != refs["base"]
    assert refs["smith"].startswith("Aye, the forge")  # the adapter really took


@pytest.mark.models
def test_two_resident_adapters_alternate(loaded, refs):
    for adapter in ("smith", "librarian", None, "librarian", "smith"):
        assert reply(loaded, adapter) == refs[adapter or "base"], adapter


@pytest.mark.models
def test_concurrent_requests_each_wear_their_own_adapter(loaded, refs):
    results: dict[str, str] = {}
    start = threading.Barrier(3)

    def run(adapter):
        start.wait()
        results[adapter or "base"] = reply(loaded, adapter)

    threads = [threading.Thread(target=run, args=(a,)) for a in ("smith", "librarian", None)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == {k: refs[k] for k in ("smith", "librarian", "base")}


@pytest.mark.models
def test_hotswap_to_a_new_version_matches_that_version(loaded, adapter_dirs, refs):
    loaded.load_adapter("smith-live", adapter_dirs["smith"])
    try:
        loaded.swap_adapter("smith-live", adapter_dirs["smith_v2"])
        assert reply(loaded, "smith-live") == refs["smith_v2"] != refs["smith"]
        assert loaded.adapters["smith-live"] == adapter_dirs["smith_v2"].resolve()
        assert _short(loaded, "smith", refs)  # other adapters untouched
        # loading under a resident name replaces it as well
        loaded.load_adapter("smith-live", adapter_dirs["smith"])
        assert _short(loaded, "smith-live", refs, "smith")
    finally:
        loaded.unload_adapter("smith-live")


def _truncated(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    weights = dst / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return dst


def _wrong_target(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    config = json.loads((dst / "adapter_config.json").read_text())
    config["target_modules"] = ["c_attn"]
    (dst / "adapter_config.json").write_text(json.dumps(config))
    return dst


def _wrong_hidden_size(src: Path, dst: Path) -> Path:
    """A LoRA for a Llama with hidden size 64: same layer names, other shapes."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
    )
    lora = LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(LlamaForCausalLM(tiny), lora).save_pretrained(dst)
    return dst


def _no_config(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / "adapter_config.json").unlink()
    return dst


@pytest.mark.models
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_truncated, "corrupt adapter_model.safetensors"),
        (_wrong_target, "target modules c_attn match no layer"),
        (_wrong_hidden_size, r"is 576->576 in this model .* trained for another base"),
        (_no_config, "missing adapter_config.json"),
    ],
    ids=["truncated", "wrong-target", "wrong-hidden-size", "no-config"],
)
def test_bad_adapter_is_refused_and_residents_keep_working(
    loaded, adapter_dirs, refs, tmp_path, make, message
):
    bad = make(adapter_dirs["smith"], tmp_path / "bad")
    before = loaded.adapters
    with pytest.raises(ConfigError, match=message):
        loaded.load_adapter("newcomer", bad)
    with pytest.raises(ConfigError, match=message):
        loaded.load_adapter("smith", bad)  # a bad new version must not damage the old
    with pytest.raises(ConfigError, match=message):
        loaded.swap_adapter("smith", bad)
    assert loaded.adapters == before
    assert _short(loaded, "smith", refs)


@pytest.mark.models
def test_unknown_or_unloaded_adapter_is_an_engine_error(loaded, adapter_dirs, refs):
    with pytest.raises(EngineError, match="'nobody' is not loaded"):
        reply(loaded, "nobody")
    loaded.load_adapter("temp", adapter_dirs["librarian"])
    loaded.unload_adapter("temp")
    with pytest.raises(EngineError, match="'temp' is not loaded"):
        reply(loaded, "temp")
    with pytest.raises(EngineError, match="not loaded"):
        loaded.unload_adapter("temp")
    with pytest.raises(ConfigError, match="invalid adapter name"):
        loaded.load_adapter("has.dot", adapter_dirs["librarian"])
    assert _short(loaded, "librarian", refs)


@pytest.mark.models
def test_unloading_every_adapter_restores_the_plain_base(base_dir, adapter_dirs, refs):
    engine = TransformersLLM(model_dir=base_dir)
    engine.load_adapter("a", adapter_dirs["smith"])
    engine.load_adapter("b", adapter_dirs["librarian"])
    engine.unload_adapter("a")  # the active one: must not warn (warnings are errors)
    engine.unload_adapter("b")
    assert engine.adapters == {}
    assert _short(engine, None, refs)
    engine.load_adapter("a", adapter_dirs["smith"])
    assert _short(engine, "a", refs, "smith")


@pytest.mark.models
def test_cancel_stops_within_a_token(loaded):
    cancel = threading.Event()
    params = GenerationParams(temperature=0.8, max_tokens=200)
    request = GenerationRequest(messages=QUESTION, params=params, seed=3)
    stream = loaded.generate(request, cancel)
    got = [next(stream) for _ in range(3)]
    cancel.set()
    assert list(stream) == []  # nothing after cancel, not even a held-back tail
    assert len(got) == 3

    # from another thread, while the consumer is blocked in the loop
    cancel = threading.Event()
    deltas: list[tuple[bool, str]] = []  # (after the cancel, delta)
    first = threading.Event()
    cancelled = threading.Event()

    def consume():
        for delta in loaded.generate(GenerationRequest(QUESTION, params, seed=4), cancel):
            deltas.append((cancelled.is_set(), delta))
            first.set()

    worker = threading.Thread(target=consume)
    worker.start()
    assert first.wait(60)
    cancelled.set()
    cancel.set()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert sum(after for after, _ in deltas) <= 1  # one forward step at most


@pytest.mark.models
def test_stop_sequences_are_cut_and_never_yielded(loaded, refs):
    full = refs["base"]
    words = full.split()
    stop = " " + words[3] + " " + words[4][:2]  # spans several tokens
    assert stop in full
    params = GREEDY.model_copy(update={"stop": (stop, "never-said-xyz")})
    request = GenerationRequest(messages=QUESTION, params=params)
    deltas = list(loaded.generate(request, threading.Event()))
    assert "".join(deltas) == full[: full.index(stop)]
    assert not any(stop in d for d in deltas)

    # a stop that starts like the text but never completes: held back, then released
    almost = full[:6] + "\x00"
    params = GREEDY.model_copy(update={"stop": (almost,)})
    assert reply(loaded, params=params) == full


@pytest.mark.models
def test_seed_reproduces_a_sampled_reply(loaded):
    params = GenerationParams(temperature=1.0, top_p=0.95, max_tokens=6)
    first = reply(loaded, "librarian", params=params, seed=11)
    assert reply(loaded, "librarian", params=params, seed=11) == first
    assert reply(loaded, params=params, seed=1) != reply(loaded, params=params, seed=2)


# a system prompt long enough for its KV state to be cached and reused
LONG_SYSTEM = ChatMessage(
    "system",
    "You are Hale, the smith of Hollowmere. You speak plainly, you love your forge, and "
    "you distrust strangers who ask about the old mine. Answer in one or two sentences.",
)


def _long(question: str) -> list[ChatMessage]:
    return [LONG_SYSTEM, ChatMessage("user", question)]


def _uncached(engine, adapter, messages) -> str:
    saved, engine.prefix_cache.max_tokens = engine.prefix_cache.max_tokens, 0
    try:
        return reply(engine, adapter, messages=messages)
    finally:
        engine.prefix_cache.max_tokens = saved


@pytest.mark.models
def test_primed_prefix_is_reused_and_replies_stay_exact(loaded, base_dir, adapter_dirs):
    loaded.prefix_cache.clear()
    loaded.prime(GenerationRequest(messages=[LONG_SYSTEM], params=GREEDY, adapter="smith"))
    system_tokens = len(loaded.model.encode([LONG_SYSTEM]))
    before = loaded.prefix_cache.stats()
    counted = loaded.prompt_tokens()
    first = reply(loaded, "smith", messages=_long("Who are you?"))
    assert first == reference(base_dir, adapter_dirs["smith"], messages=_long("Who are you?"))
    second = reply(loaded, "smith", messages=_long("What do you sell?"))
    assert second == _uncached(loaded, "smith", _long("What do you sell?"))
    after = loaded.prefix_cache.stats()
    assert after.hits - before.hits == 2
    # each reply skipped at least the system prompt's prefill (less the generation prompt)
    assert after.reused_tokens - before.reused_tokens >= 2 * (system_tokens - 4)
    # what /metrics reports (llm_prompt_tokens): the same reuse, and the rest computed
    assert loaded.prompt_tokens()["reused"] - counted["reused"] >= 2 * (system_tokens - 4)
    assert loaded.prompt_tokens()["computed"] > counted["computed"]
    # the same prompt under another adapter or the base is never served from smith's KV
    assert reply(loaded, "librarian", messages=_long("Who are you?")) == _uncached(
        loaded, "librarian", _long("Who are you?")
    )


def _conversation(exchanges: int) -> list[ChatMessage]:
    lines = [LONG_SYSTEM]
    for i in range(exchanges):
        lines.append(ChatMessage("user", f"Tell me about blade number {i}, the one by the door?"))
        lines.append(ChatMessage("assistant", f"Blade {i} is good steel, folded twice and oiled."))
    return lines


@pytest.mark.models
def test_priming_does_not_start_while_a_reply_is_in_flight(loaded):
    loaded.prefix_cache.clear()
    ahead = _conversation(4)
    before = loaded.primes()
    talking = loaded.generate(
        GenerationRequest(QUESTION, GREEDY, adapter="smith"), threading.Event()
    )
    next(talking)
    loaded.prime(GenerationRequest(ahead, GREEDY, adapter="smith"))
    assert loaded.primes()["yielded"] == before["yielded"] + 1
    assert loaded.prefix_cache.lookup("smith", loaded.model.encode(ahead)) == (0, None)
    talking.close()
    loaded.prime(GenerationRequest(ahead, GREEDY, adapter="smith"))  # idle now: all of it
    assert loaded.primes()["whole"] == before["whole"] + 1
    n = len(loaded.model.encode(ahead))
    assert loaded.prefix_cache.lookup("smith", loaded.model.encode(ahead))[0] == n - 1


@pytest.mark.models
def test_a_reply_interrupts_priming_and_reuses_what_it_computed(loaded, monkeypatch):
    loaded.prefix_cache.clear()
    ahead = _conversation(8)
    chunk = loaded.prime_chunk_tokens
    assert chunk and len(loaded.model.encode(ahead)) > 6 * chunk
    messages = [*ahead, ChatMessage("user", "And the blade on the wall?")]
    expected = _uncached(loaded, "smith", messages)
    forward, pieces = loaded._forward, []
    primer: list[threading.Thread] = []

    def tracked(step_ids, total_len, past, adapter):
        out = forward(step_ids, total_len, past, adapter)
        if primer and threading.current_thread() is primer[0]:
            pieces.append(step_ids.shape[1])
            if len(pieces) == 2:  # the player's turn arrives while the 2nd piece runs
                deadline = time.monotonic() + 30
                while not loaded.model.arriving and time.monotonic() < deadline:
                    time.sleep(0.001)
        return out

    monkeypatch.setattr(loaded, "_forward", tracked)
    before, counted = loaded.primes(), loaded.prompt_tokens()
    primer.append(
        threading.Thread(
            target=loaded.prime, args=(GenerationRequest(ahead, GREEDY, adapter="smith"),)
        )
    )
    primer[0].start()
    while len(pieces) < 2 and primer[0].is_alive():
        time.sleep(0.001)
    answer = reply(loaded, "smith", messages=messages)
    primer[0].join(30)
    # the prime gave the model up after its piece, two pieces in, and the reply started
    # from those: the same reply as with no cache at all
    assert pieces == [chunk, chunk]
    assert loaded.primes()["yielded"] == before["yielded"] + 1
    assert loaded.prompt_tokens()["reused"] - counted["reused"] == 2 * chunk
    assert answer == expected


@pytest.mark.models
def test_a_swapped_adapter_never_reuses_a_prefix_computed_with_its_old_weights(
    loaded, adapter_dirs
):
    messages = _long("Who are you?")
    loaded.load_adapter("smith-live", adapter_dirs["smith"])
    try:
        old = reply(loaded, "smith-live", messages=messages)  # cached with v1 weights
        assert loaded.prefix_cache.lookup("smith-live", loaded.model.encode(messages))[0] > 0
        loaded.swap_adapter("smith-live", adapter_dirs["smith_v2"])
        assert loaded.prefix_cache.lookup("smith-live", loaded.model.encode(messages)) == (0, None)
        new = reply(loaded, "smith-live", messages=messages)
        assert new == _uncached(loaded, "smith-live", messages) != old
    finally:
        loaded.unload_adapter("smith-live")
    assert loaded.prefix_cache.lookup("smith-live", loaded.model.encode(messages)) == (0, None)


@pytest.mark.models
def test_revalidation_is_skipped_only_for_unchanged_files(loaded, adapter_dirs, tmp_path):
    copy = tmp_path / "smith"
    shutil.copytree(adapter_dirs["smith"], copy)
    first = loaded.inspect_adapter(copy)
    assert loaded.inspect_adapter(copy) is first  # cached
    weights = copy / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ConfigError, match="corrupt"):
        loaded.inspect_adapter(copy)  # changed on disk: validated again, and refused


@pytest.mark.models
def test_warmup_and_from_settings(settings):
    engine = TransformersLLM.from_settings(settings)
    engine.warmup()


@pytest.mark.models
def test_prepared_base_is_reused(settings, base_dir, monkeypatch):
    weights = base_dir / "model.safetensors"
    marker = base_dir / smollm2.MARKER
    before = (weights.stat().st_mtime_ns, marker.stat().st_mtime_ns)
    smollm2._fingerprints.clear()  # as in a fresh process: hash included

    def prepare(*args):
        raise AssertionError("the prepared base was prepared again")

    monkeypatch.setattr(smollm2, "_prepare", prepare)
    assert smollm2.base_model_dir(settings) == base_dir
    assert (weights.stat().st_mtime_ns, marker.stat().st_mtime_ns) == before
    tokenizer_config = json.loads((base_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["eos_token"] == smollm2.END_OF_TURN
    assert (base_dir / "chat_template.jinja").read_text().count("<|im_start|>") >= 2
    assert json.loads((base_dir / "config.json").read_text()).get("quantization_config") is None


# --- no model: the stop scanner and the cache protocol ---


def _deltas(stops, texts):
    scanner = StopScanner(stops)
    out, stopped = [], False
    for text in texts:
        delta, stopped = scanner.feed(text)
        out.append(delta)
        if stopped:
            break
    else:
        out.append(scanner.flush())
    return out, stopped


def test_stop_scanner_holds_back_a_possible_stop_prefix():
    out, stopped = _deltas(["\nUser:"], ["Hi", "Hi.\n", "Hi.\nUs", "Hi.\nUser: more"])
    assert out == ["Hi", ".", "", ""] and stopped
    out, stopped = _deltas(["\nUser:"], ["Hi", "Hi.\n", "Hi.\nUs", "Hi.\nUsually"])
    assert "".join(out) == "Hi.\nUsually" and not stopped
    assert out[1:3] == [".", ""]  # "\n" and "\nUs" were held until disambiguated


def test_stop_scanner_takes_the_earliest_stop_and_ignores_empty_ones():
    out, stopped = _deltas(["", "world", "lo"], ["Hello world"])
    assert out == ["Hel"] and stopped
    out, _ = _deltas([], ["a", "ab", "abc"])
    assert out == ["a", "b", "c", ""]


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """base_model_dir against a small fake GGUF and a preparation that just writes files."""
    gguf = tmp_path / "pkg" / smollm2.GGUF_NAME
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF v1")
    monkeypatch.setattr(smollm2, "gguf_path", lambda: gguf)
    calls: list[Path] = []

    def prepare(source, out, progress):
        calls.append(out)
        progress("dequantize", 1, 1)
        (out / "model.safetensors").write_bytes(source.read_bytes())

    monkeypatch.setattr(smollm2, "_prepare", prepare)
    return gguf, calls


def _settings(tmp_path):
    from personae.daemon.settings import Settings

    return Settings(cache_dir=tmp_path / "cache")


def test_cache_is_prepared_once_and_stale_copies_are_replaced(tmp_path, fake_gguf):
    gguf, calls = fake_gguf
    settings = _settings(tmp_path)
    steps: list[str] = []
    target = smollm2.base_model_dir(settings, lambda step, done, total: steps.append(step))
    assert steps == ["dequantize"] and len(calls) == 1
    assert smollm2.base_model_dir(settings) == target and len(calls) == 1

    gguf.write_bytes(b"GGUF v2, another build")  # the package was upgraded
    smollm2.base_model_dir(settings)
    assert len(calls) == 2
    assert (target / "model.safetensors").read_bytes() == gguf.read_bytes()
    assert sorted(p.name for p in settings.cache_dir.iterdir()) == [smollm2.CACHE_NAME]


def test_partial_cache_without_marker_is_redone(tmp_path, fake_gguf):
    _, calls = fake_gguf
    settings = _settings(tmp_path)
    partial = settings.cache_dir / smollm2.CACHE_NAME
    partial.mkdir(parents=True)
    (partial / "model.safetensors").write_bytes(b"half")
    smollm2.base_model_dir(settings)
    assert len(calls) == 1 and (partial / smollm2.MARKER).is_file()


def test_failed_preparation_leaves_nothing_behind(tmp_path, fake_gguf, monkeypatch):
    def broken(source, out, progress):
        (out / "model.safetensors").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(smollm2, "_prepare", broken)
    settings = _settings(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        smollm2.base_model_dir(settings)
    assert list(settings.cache_dir.iterdir()) == []
