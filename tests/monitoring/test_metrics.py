"""Prometheus metrics: per-app registries, expected series and values, the `/metrics` route."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from personae.daemon.app import create_app
from personae.daemon.monitoring import STAGES, Metrics
from personae.daemon.settings import Settings


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse the rendered text back: what a Prometheus server would scrape."""
    body, _ = metrics.render()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def exercise(m: Metrics) -> None:
    m.session_opened()
    m.session_opened()
    m.session_closed()
    m.stage("stt", 0.2)
    m.stage("routing", 0.004)
    m.stage("first_token", 0.3)
    m.stage("first_audio", 0.6)
    m.stage("first_audio", 1.2)
    m.reply("bram", "completed", tokens=30, seconds=1.5)
    m.reply("bram", "cancelled", tokens=4, seconds=0.5)
    m.reply("mara", "failed")
    m.error("engine_error")
    m.error("engine_error")
    m.error("invalid_request")
    m.adapter_swap()
    m.adapter_cache(hit=True)
    m.adapter_cache(hit=True)
    m.adapter_cache(hit=False)
    m.consistency("bram", score=0.31, traits=0.42)
    m.consistency_alert("bram", "consistency")


def test_rendered_series_and_values():
    m = Metrics()
    exercise(m)
    s = samples(m)

    assert s[("personae_active_sessions", ())] == 1
    assert s[("personae_stage_seconds_count", (("stage", "first_audio"),))] == 2
    assert s[("personae_stage_seconds_sum", (("stage", "first_audio"),))] == pytest.approx(1.8)
    assert s[("personae_stage_seconds_bucket", (("le", "1.0"), ("stage", "first_audio")))] == 1
    assert s[("personae_stage_seconds_count", (("stage", "stt"),))] == 1
    # every stage is exported from the start, even before its first observation
    for stage in STAGES:
        assert ("personae_stage_seconds_count", (("stage", stage),)) in s
    assert s[("personae_stage_seconds_count", (("stage", "reply"),))] == 0
    assert s[("personae_time_to_first_audio_seconds_count", ())] == 2
    assert s[("personae_time_to_first_audio_seconds_sum", ())] == pytest.approx(1.8)

    assert s[("personae_tokens_per_second_count", (("character", "bram"),))] == 2
    assert s[("personae_tokens_per_second_sum", (("character", "bram"),))] == pytest.approx(28)
    # a reply that produced no tokens counts as a reply but not as a speed
    assert ("personae_tokens_per_second_count", (("character", "mara"),)) not in s
    replies = "personae_replies_total"
    assert s[(replies, (("character", "bram"), ("status", "completed")))] == 1
    assert s[(replies, (("character", "bram"), ("status", "cancelled")))] == 1
    assert s[(replies, (("character", "mara"), ("status", "failed")))] == 1

    assert s[("personae_errors_total", (("code", "engine_error"),))] == 2
    assert s[("personae_errors_total", (("code", "invalid_request"),))] == 1
    assert s[("personae_adapter_swaps_total", ())] == 1
    assert s[("personae_adapter_cache_hits_total", ())] == 2
    assert s[("personae_adapter_cache_misses_total", ())] == 1
    assert s[("personae_consistency_score", (("character", "bram"),))] == pytest.approx(0.31)
    assert s[("personae_trait_adherence", (("character", "bram"),))] == pytest.approx(0.42)
    alerts = "personae_consistency_alerts_total"
    assert s[(alerts, (("character", "bram"), ("signal", "consistency")))] == 1


def test_text_format_has_help_and_type_lines():
    m = Metrics()
    exercise(m)
    body, content_type = m.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert "# TYPE personae_stage_seconds histogram" in text
    assert "# TYPE personae_errors_total counter" in text
    assert "# TYPE personae_active_sessions gauge" in text
    assert 'personae_errors_total{code="engine_error"} 2.0' in text


def test_two_instances_do_not_collide():
    a, b = Metrics(), Metrics()  # a shared registry would raise "Duplicated timeseries"
    a.error("engine_error")
    a.session_opened()
    assert a.value("personae_errors_total", {"code": "engine_error"}) == 1
    assert b.value("personae_errors_total", {"code": "engine_error"}) is None
    assert b.value("personae_active_sessions") == 0
    assert b"engine_error" not in b.render()[0]


def test_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="unknown stage 'tts'; expected one of stt, routing"):
        Metrics().stage("tts", 0.1)


def test_metrics_route_renders_the_service_metrics():
    m = Metrics()
    exercise(m)
    # the route only reads `service.metrics`; a stand-in keeps this test free of engines
    app = create_app(Settings(), service=SimpleNamespace(metrics=m))  # type: ignore[arg-type]
    response = TestClient(app).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == m.render()[1]
    assert 'personae_errors_total{code="engine_error"} 2.0' in response.text
    assert "personae_active_sessions 1.0" in response.text


def test_prompt_tokens_are_read_from_the_engine_at_each_scrape():
    m = Metrics()
    counts = {"reused": 0, "computed": 0}
    m.watch_prompt_tokens(lambda: counts)
    assert m.value("personae_llm_prompt_tokens", {"source": "reused"}) == 0
    counts.update(reused=180, computed=40)  # the engine served a reply from its cache
    assert m.value("personae_llm_prompt_tokens", {"source": "reused"}) == 180
    assert m.value("personae_llm_prompt_tokens", {"source": "computed"}) == 40
