"""Consistency and trait adherence per character: scores, rolling windows, alerts."""

from __future__ import annotations

import logging
import threading
from statistics import mean

import pytest

from personae.daemon.characters import Character, default_cast_dir, load_cast
from personae.daemon.monitoring import ConsistencyConfig, ConsistencyMonitor, Metrics
from personae.daemon.monitoring.consistency import breaks_character, words_per_sentence
from personae.daemon.settings import Settings
from personae.daemon.testing import FakeEmbedder

CAST = load_cast([default_cast_dir()])

# new lines in the style of each character's examples in daemon/cast/*.toml
ON_CHARACTER = {
    "bram": [
        "Put it on the anvil. I'll have it by dusk.",
        "Good iron doesn't lie. Men do.",
        "Fire's hot. Hammer's ready. What needs mending?",
        "That blade's dull. Bring it to the forge tomorrow.",
    ],
    "mara": [
        "The 1792 charter is on the third shelf, left of the maps. What are you looking for?",
        "Six ledgers mention the mill, the last in 1903. Shall I fetch them?",
        "The survey shows a ford at the bend, two miles north. Why would you need it?",
    ],
    "wren": [
        "Oi boss, word on the roofs is the miller's back. Costs you a pie.",
        "Quick as a cat, boss. Where's it going?",
        "Heard a rumour, boss. Green lights again, midnight by the mill.",
    ],
}
GENERIC = [
    "As an AI language model, I can help you with that.",
    "Certainly! Here is a comprehensive overview of the topic you requested, "
    "including several key considerations.",
    "I'm sorry, but I cannot assist with that request. Is there anything else I can "
    "help you with today?",
    "Thank you for your question. There are many factors to consider when evaluating "
    "this situation.",
]
# for the bag-of-words FakeEmbedder "in style" has to mean "in the same words"
ON_CHARACTER_FAKE = {
    "bram": ["Bent steel on the bench can be saved.", "Mind the sparks. What steel do you need?"],
    "mara": [
        "Forty ledgers and three charters. Which would you like?",
        "The survey marks the river north.",
    ],
    "wren": [
        "Heard a rumour, boss. Green lights at midnight.",
        "Quicker than a roof cat, boss. Where to?",
    ],
}


def others(cid: str, lines: dict[str, list[str]]) -> list[str]:
    return [t for other, ts in lines.items() if other != cid for t in ts]


def scores(monitor: ConsistencyMonitor, character: Character, texts: list[str]) -> list[float]:
    out = []
    for t in texts:
        obs = monitor.observe(character, t)
        assert obs is not None
        out.append(obs.score)
    return out


def quiet_monitor(embedder) -> ConsistencyMonitor:
    """Scores only: a one-reply window and thresholds no score can fall below."""
    cfg = ConsistencyConfig(window=1, min_replies=1, threshold=-2.0, trait_threshold=-1.0)
    return ConsistencyMonitor(embedder=embedder, config=cfg)


@pytest.mark.parametrize("cid", sorted(CAST))
def test_fake_on_character_scores_higher(cid):
    monitor = quiet_monitor(FakeEmbedder())
    ch = CAST[cid]
    on = scores(monitor, ch, ON_CHARACTER_FAKE[cid])
    off = scores(monitor, ch, others(cid, ON_CHARACTER_FAKE) + GENERIC)
    assert min(on) > max(off)


def test_own_reference_line_scores_highest():
    monitor = ConsistencyMonitor(
        embedder=FakeEmbedder(), config=ConsistencyConfig(top_k=1, window=1, min_replies=1)
    )
    bram = CAST["bram"]
    obs = monitor.observe(bram, bram.examples[0].character)
    assert obs is not None and obs.score == pytest.approx(1.0)


def drifting_monitor(metrics: Metrics, **overrides: object) -> ConsistencyMonitor:
    cfg: dict[str, object] = {
        "window": 4,
        "min_replies": 3,
        "top_k": 1,
        "threshold": 0.3,
        "trait_threshold": -1.0,
        "rearm_margin": 0.05,
    }
    cfg.update(overrides)
    config = ConsistencyConfig(**cfg)  # type: ignore[arg-type]
    return ConsistencyMonitor(embedder=FakeEmbedder(), config=config, metrics=metrics)


def alerts_counted(metrics: Metrics, character: str, signal: str) -> float | None:
    labels = {"character": character, "signal": signal}
    return metrics.value("personae_consistency_alerts_total", labels)


def run(monitor: ConsistencyMonitor, character: Character, texts: list[str]) -> list:
    alerts = []
    for t in texts:
        obs = monitor.observe(character, t)
        assert obs is not None
        alerts += obs.alerts
    return alerts


def test_alert_fires_once_while_drifting_and_rearms_after_recovery(caplog):
    metrics = Metrics()
    monitor = drifting_monitor(metrics)
    bram = CAST["bram"]
    good = [e.character for e in bram.examples] + [bram.greeting]
    bad = GENERIC * 2

    with caplog.at_level(logging.WARNING, logger="personae.daemon.monitoring"):
        assert run(monitor, bram, good) == []
        first = run(monitor, bram, bad)
        assert len(first) == 1  # not one per bad reply
        alert = first[0]
        assert (alert.character, alert.signal, alert.replies) == ("bram", "consistency", 4)
        assert alert.rolling < alert.threshold == 0.3

        assert run(monitor, bram, good * 2) == []  # recovers and re-arms, quietly
        assert monitor.health()["bram"]["consistency"] > 0.35
        second = run(monitor, bram, bad)
        assert len(second) == 1

    assert alerts_counted(metrics, "bram", "consistency") == 2
    assert metrics.value("personae_consistency_score", {"character": "bram"}) == pytest.approx(
        monitor.health()["bram"]["consistency"]
    )
    lines = [r for r in caplog.records if r.name == "personae.daemon.monitoring"]
    assert len(lines) == 2
    assert all(r.levelno == logging.WARNING for r in lines)
    message = lines[0].getMessage()
    assert "character=bram" in message and "signal=consistency" in message
    # scores and names only: no reply text
    assert not any(word in message for word in ("language", "Certainly", "sorry", "factors"))


def test_no_alert_before_min_replies():
    monitor = drifting_monitor(Metrics())
    alerts_per_reply = [
        len(obs.alerts) for t in GENERIC if (obs := monitor.observe(CAST["mara"], t))
    ]
    assert alerts_per_reply == [0, 0, 1, 0]


def test_per_character_threshold_override():
    metrics = Metrics()
    monitor = drifting_monitor(metrics, threshold=0.0, thresholds={"wren": 0.99})
    line = "Heard a rumour, boss. Green lights at midnight."
    assert run(monitor, CAST["bram"], [line] * 3) == []
    (alert,) = run(monitor, CAST["wren"], [line] * 3)
    assert (alert.character, alert.threshold) == ("wren", 0.99)
    assert monitor.config.threshold_for("wren", "consistency") == 0.99
    assert monitor.config.threshold_for("bram", "consistency") == 0.0


def test_breaking_character_zeroes_traits_and_alerts_on_traits():
    metrics = Metrics()
    monitor = drifting_monitor(metrics, threshold=-2.0, trait_threshold=0.2)
    bram = CAST["bram"]
    obs = monitor.observe(bram, "Leave it on the bench. Bent steel can be saved.")
    assert obs is not None and not obs.breaks_character and obs.traits > 0.2
    alerts = run(monitor, bram, ["As an AI language model, I cannot forge a sword."] * 3)
    assert [(a.signal, a.character) for a in alerts] == [("traits", "bram")]
    assert alerts_counted(metrics, "bram", "traits") == 1
    assert metrics.value("personae_trait_adherence", {"character": "bram"}) < 0.2


def test_breaks_character_phrases():
    assert breaks_character("As an AI, I don't have feelings.")
    assert breaks_character("I'm just a language model.")
    assert breaks_character("I am an AI assistant.")
    assert breaks_character("I'm an AI.")
    assert not breaks_character("Mind the sparks. What do you need?")
    assert not breaks_character("I am a smith, not a saint.")


def test_words_per_sentence():
    assert words_per_sentence(["Leave it on the bench. Broken steel can't."]) == 4.0
    assert words_per_sentence(["", "..."]) == 0.0


def test_new_reference_lines_start_a_fresh_window():
    monitor = drifting_monitor(Metrics())
    bram = CAST["bram"]
    run(monitor, bram, GENERIC[:2])
    assert monitor.health()["bram"]["replies"] == 2
    new_version = bram.model_copy(update={"greeting": "Forge is hot. Speak up."})
    obs = monitor.observe(new_version, "Forge is hot.")
    assert obs is not None and obs.replies == 1


def test_reply_without_words_is_not_scored():
    monitor = drifting_monitor(Metrics())
    assert monitor.observe(CAST["bram"], "") is None
    assert monitor.observe(CAST["bram"], " ... ") is None
    assert monitor.health() == {}


def test_observe_is_thread_safe():
    monitor = ConsistencyMonitor(
        embedder=FakeEmbedder(), config=ConsistencyConfig(window=500, min_replies=1)
    )
    mara = CAST["mara"]
    texts = ON_CHARACTER["mara"] + GENERIC

    def work() -> None:
        for _ in range(15):
            for t in texts:
                monitor.observe(mara, t)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert monitor.health()["mara"]["replies"] == 4 * 15 * len(texts)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": 0},
        {"min_replies": 0},
        {"window": 3, "min_replies": 4},
        {"top_k": 0},
        {"rearm_margin": -0.1},
    ],
)
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        ConsistencyConfig(**kwargs)


def test_config_overrides_are_frozen():
    overrides = {"bram": 0.5}
    cfg = ConsistencyConfig(thresholds=overrides)
    overrides["bram"] = 0.1
    assert cfg.threshold_for("bram", "consistency") == 0.5
    with pytest.raises(TypeError):
        cfg.thresholds["mara"] = 0.2  # type: ignore[index]


# -- the real embedder (all-MiniLM-L6-v2): the defaults are calibrated on it ------------


@pytest.fixture(scope="module")
def minilm():
    import torch

    from personae.daemon.engines.embedder_st import SentenceTransformerEmbedder

    # one thread: on a busy shared CPU, one-sentence batches run ten times faster than
    # with every core; the setting is process-wide, so it is put back afterwards
    threads = torch.get_num_threads()
    yield SentenceTransformerEmbedder.from_settings(Settings(threads=1))
    torch.set_num_threads(threads)


@pytest.mark.models
@pytest.mark.parametrize("cid", sorted(CAST))
def test_real_on_character_scores_higher(minilm, cid):
    monitor = quiet_monitor(minilm)
    ch = CAST[cid]
    on = scores(monitor, ch, ON_CHARACTER[cid])
    off_others = scores(monitor, ch, others(cid, ON_CHARACTER))
    off_generic = scores(monitor, ch, GENERIC)
    assert min(on) > max(off_others)
    assert min(on) > max(off_generic)
    # and the default threshold sits between them on average
    assert mean(off_generic) < ConsistencyConfig().threshold < mean(on)


@pytest.mark.models
@pytest.mark.parametrize("cid", sorted(CAST))
def test_real_traits_higher_on_character_than_generic(minilm, cid):
    monitor = quiet_monitor(minilm)
    ch = CAST[cid]

    def traits(texts: list[str]) -> float:
        return mean(o.traits for t in texts if (o := monitor.observe(ch, t)))

    assert traits(ON_CHARACTER[cid]) > traits(GENERIC)


@pytest.mark.models
def test_real_drift_alerts_once_with_default_config(minilm):
    metrics = Metrics()
    monitor = ConsistencyMonitor(embedder=minilm, metrics=metrics)  # defaults: window 20
    bram = CAST["bram"]
    good = ON_CHARACTER["bram"] * 3
    assert run(monitor, bram, good) == []
    drift = run(monitor, bram, GENERIC * 5)
    assert [a.signal for a in drift].count("consistency") == 1
    assert run(monitor, bram, good * 2) == []
    assert alerts_counted(metrics, "bram", "consistency") == 1
