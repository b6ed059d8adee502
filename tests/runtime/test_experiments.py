"""A/B experiments: stable assignment, the traffic split, metrics and results."""

from __future__ import annotations

import math

import pytest

from personae.daemon.characters import Character
from personae.daemon.runtime.errors import ExperimentError, UnknownVersionError
from personae.daemon.runtime.experiments import Experiments, VariantSpec, assign, bucket
from personae.daemon.runtime.registry import Registry
from tests.runtime.processes import result, start

WEIGHTS = [("control", 0.5), ("new-adapter", 0.3), ("new-voice", 0.2)]


def test_assignment_is_the_same_in_two_processes_with_different_hash_seeds() -> None:
    n = 3000
    procs = [start("assign", str(n), seed="1"), start("assign", str(n), seed="4242")]
    first, second = (result(p) for p in procs)
    here = [assign("exp-salt", f"player-{i}", WEIGHTS) for i in range(n)]
    assert first == second == here


def test_split_matches_the_weights_within_statistical_tolerance() -> None:
    n = 20_000
    counts = dict.fromkeys((name for name, _ in WEIGHTS), 0)
    for i in range(n):
        counts[assign("split-test", f"player-{i}", WEIGHTS)] += 1
    chi2 = sum((counts[name] - n * w) ** 2 / (n * w) for name, w in WEIGHTS)
    assert chi2 < 13.8, counts  # chi-square, 2 degrees of freedom, p = 0.001
    for name, w in WEIGHTS:  # and each share within 4 standard deviations
        assert abs(counts[name] - n * w) < 4 * math.sqrt(n * w * (1 - w)), counts


def test_buckets_are_uniform_and_experiments_independent() -> None:
    xs = [bucket("a", str(i)) for i in range(5000)]
    assert 0 <= min(xs) and max(xs) < 1 and abs(sum(xs) / len(xs) - 0.5) < 0.02
    same = sum(
        assign("a", str(i), WEIGHTS[:2]) == assign("b", str(i), WEIGHTS[:2]) for i in range(4000)
    )
    # independent 62.5/37.5 splits agree on 0.625^2 + 0.375^2 = 53% of players
    assert abs(same / 4000 - (0.625**2 + 0.375**2)) < 0.03
    assert assign("a", "p", [("only", 1.0), ("never", 0.0)]) == "only"


@pytest.fixture
def experiments(engine) -> Experiments:
    reg = Registry(engine)
    ch = Character(id="mara", name="Mara", description="A smith.")
    for v in ("v1", "v2"):
        reg.register(ch, version=v, base_model="base")
    return Experiments(engine, cache_s=0)


def test_lifecycle_assignment_and_results(experiments: Experiments) -> None:
    exp = experiments.create(
        "mara-adapter-v2",
        character_id="mara",
        variants=[
            VariantSpec("control", 0.5, version="v1"),
            VariantSpec("v2", 0.5, version="v2", overrides={"voice": {"rate": 1.1}}),
        ],
        description="does the v2 adapter stay in character?",
    )
    assert exp.status == "draft" and exp.salt == "mara-adapter-v2"
    assert [(v.name, v.version, v.is_control) for v in exp.variants] == [
        ("control", "v1", True),
        ("v2", "v2", False),
    ]
    assert experiments.variant_for("mara", "p1") is None  # drafts assign nobody
    experiments.start("mara-adapter-v2")
    running, variant = experiments.variant_for("mara", "p1")
    assert running.name == "mara-adapter-v2"
    assert variant == experiments.assign("mara-adapter-v2", "p1")
    assert variant.name == assign("mara-adapter-v2", "p1", [("control", 0.5), ("v2", 0.5)])

    for i in range(40):
        name = experiments.assign("mara-adapter-v2", f"p{i}").name
        experiments.record("mara-adapter-v2", name, "turns", 1, player_id=f"p{i}")
        score = 0.8 if name == "control" else 0.9
        experiments.record("mara-adapter-v2", name, "consistency", score + (i % 3) * 0.01,
                           player_id=f"p{i}")  # fmt: skip
    experiments.record("mara-adapter-v2", "v2", "feedback", 1.0)
    res = experiments.results("mara-adapter-v2")
    control, v2 = res.variants
    assert control.players + v2.players == 40
    assert control.metrics["turns"].n == control.players
    assert v2.metrics["consistency"].diff == pytest.approx(0.1, abs=0.01)
    assert v2.metrics["consistency"].p_value < 0.001
    assert control.metrics["consistency"].diff is None
    assert "feedback" in v2.metrics and "feedback" not in control.metrics
    lo, hi = v2.metrics["consistency"].ci95
    assert lo < v2.metrics["consistency"].mean < hi
    assert res.as_dict()["variants"][1]["metrics"]["turns"]["n"] == v2.metrics["turns"].n

    experiments.stop("mara-adapter-v2")
    assert experiments.variant_for("mara", "p1") is None
    assert experiments.results("mara-adapter-v2").status == "stopped"


def test_bad_experiments_are_clear_errors(experiments: Experiments) -> None:
    two = [VariantSpec("a", 1), VariantSpec("b", 1)]
    with pytest.raises(ExperimentError, match="at least two"):
        experiments.create("x", character_id="mara", variants=[VariantSpec("a", 1)])
    with pytest.raises(ExperimentError, match="unique"):
        experiments.create("x", character_id="mara", variants=[VariantSpec("a", 1)] * 2)
    with pytest.raises(ExperimentError, match="weights"):
        experiments.create(
            "x", character_id="mara", variants=[VariantSpec("a", 0), VariantSpec("b", 0)]
        )
    with pytest.raises(ExperimentError, match="weight"):
        VariantSpec("a", -1)
    with pytest.raises(UnknownVersionError):
        experiments.create(
            "x", character_id="mara", variants=[VariantSpec("a", 1, version="v9"), two[1]]
        )
    assert experiments.experiments() == []  # nothing half-created

    experiments.create("x", character_id="mara", variants=two)
    with pytest.raises(ExperimentError, match="already exists"):
        experiments.create("x", character_id="mara", variants=two)
    with pytest.raises(ExperimentError, match="only a running one stops"):
        experiments.stop("x")
    experiments.start("x")
    with pytest.raises(ExperimentError, match="only a draft can start"):
        experiments.start("x")
    experiments.create("y", character_id="mara", variants=two)
    with pytest.raises(ExperimentError, match="already runs for mara"):
        experiments.start("y")
    with pytest.raises(ExperimentError, match="no variant 'c'"):
        experiments.record("x", "c", "turns", 1)
    with pytest.raises(ExperimentError, match="not finite"):
        experiments.record("x", "a", "latency_ms", float("nan"))
    with pytest.raises(ExperimentError, match="no experiment named 'nope'") as err:
        experiments.results("nope")
    assert err.value.code == "unknown_experiment"
