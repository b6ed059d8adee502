"""The testing kit: what tests and benchmarks need to run personae without models.

- `fakes`: scripted fake engines (exported here) and `register_fakes`, which puts
  them in the engine registry by name;
- `harness`: a RealtimeSession driven in-process (`fake_service`, `running`), and
  `served` for an app under uvicorn in a thread;
- `launcher`: a real daemon process on 127.0.0.1 (`Daemon`, `FakeEngines`), run
  through `serve` (`python -m personae.daemon.testing.serve`);
- `wire`: a test client's msgpack frames over a sync WebSocket;
- `fuzzing`: frame strategies and session checks (needs hypothesis, the `dev` extra);
- `crashing`: SIGKILL cycles of a daemon process that writes, and what survived;
- `casts`: synthetic casts for routing at scale;
- `tiny_adapter`: real LoRA adapters trained in seconds (torch, transformers and peft,
  all in the `daemon` extra).

Only the fakes load with the package; the rest import what they need when imported.
"""

from personae.daemon.testing.fakes import (
    EnergyVADStream,
    FakeEmbedder,
    FakeLLM,
    FakeOptions,
    FakeSTT,
    FakeTTS,
    FakeVAD,
    register_fakes,
    silence,
    tone,
)

__all__ = [
    "EnergyVADStream",
    "FakeEmbedder",
    "FakeLLM",
    "FakeOptions",
    "FakeSTT",
    "FakeTTS",
    "FakeVAD",
    "register_fakes",
    "silence",
    "tone",
]
