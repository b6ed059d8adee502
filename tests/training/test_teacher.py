"""Strategies B and C through a real OpenAI-compatible endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from personae.training.errors import TeacherError
from personae.training.pipeline import Pipeline
from personae.training.recipe import TeacherConfig, load_recipe
from personae.training.rundir import read_jsonl
from personae.training.teacher import Teacher, parse_json_reply

from .conftest import FakeTeacher, write_recipe


def _recipe(tmp_path: Path, url: str, *, qa: bool = True) -> Path:
    return write_recipe(
        tmp_path,
        f"""
[teacher]
base_url = "{url}"
retries = 1
timeout_s = 5

[strategies.rewrite]
mode = "teacher"
max_passages = 3

[strategies.qa]
enabled = {str(qa).lower()}
max_chunks = 2
questions_per_chunk = 2
""",
    )


def _pipeline(path: Path) -> Pipeline:
    return Pipeline(load_recipe(path), show_progress=False)


def test_rewrite_and_grounded_qa_through_the_teacher(
    tmp_path: Path, fake_teacher: FakeTeacher
) -> None:
    p = _pipeline(_recipe(tmp_path, fake_teacher.url))
    p.ingest()
    counts = p.extract()
    rewrites = list(read_jsonl(p.run / "extract/rewrite.jsonl"))
    assert len(rewrites) == 9  # three passages for each of three characters
    accepted = [r for r in rewrites if r["accepted"]]
    assert accepted and all(
        re.search(r"\b(I|my|me)\b", r["assistant"]) and not r["problems"] for r in accepted
    )
    # passages the teacher left in the third person are rejected, not trained on
    rejected = [r for r in rewrites if not r["accepted"]]
    assert all(r["problems"] for r in rejected)
    assert counts.get("rewrite:bram", 0) + counts.get("rewrite rejected:bram", 0) == 3

    qa = list(read_jsonl(p.run / "extract/qa.jsonl"))
    assert len(qa) == 12  # 2 chunks x 2 questions x 3 characters
    supported = [r for r in qa if r["accepted"]]
    invented = [r for r in qa if "Zanzibar" in r["assistant"]]
    assert len(supported) == 6 and all(r["support"] >= 0.5 for r in supported)
    assert len(invented) == 6 and not any(r["accepted"] for r in invented)
    assert all(r["provenance"]["file"] == "hollowmere.md" for r in qa)
    # only accepted teacher items reach the dataset
    strategies = {(e["strategy"], e["assistant"]) for e in p.examples()}
    assert not any("Zanzibar" in a for _, a in strategies)
    assert {"dialogue", "rewrite", "qa"} <= {s for s, _ in strategies}
    body = fake_teacher.requests[0]
    assert body["model"] == "teacher" and body["messages"][0]["role"] == "system"


def test_teacher_down_is_a_clear_error_and_loses_nothing(
    tmp_path: Path, fake_teacher: FakeTeacher, dead_url: str
) -> None:
    # the teacher answers four requests, then fails
    fake_teacher.fail_after = 4
    path = _recipe(tmp_path, fake_teacher.url, qa=False)
    p = _pipeline(path)
    p.ingest()
    with pytest.raises(TeacherError) as err:
        p.extract()
    assert fake_teacher.url in str(err.value) and "teacher.base_url" in str(err.value)
    saved = list(read_jsonl(p.run / "extract/rewrite.jsonl"))
    assert len(saved) == 4  # everything answered before the failure is on disk
    assert "extract" not in p.run.state()  # the stage is not marked done

    # a teacher that is not there at all
    p_dead = _pipeline(_recipe(tmp_path, dead_url, qa=False))
    with pytest.raises(TeacherError, match=r"unreachable after 2 attempts"):
        p_dead.extract()
    assert len(list(read_jsonl(p.run / "extract/rewrite.jsonl"))) == 4

    # back up: the rerun asks only for the missing items
    fake_teacher.fail_after = None
    before = len(fake_teacher.requests)
    p = _pipeline(_recipe(tmp_path, fake_teacher.url, qa=False))
    p.extract()
    assert len(fake_teacher.requests) - before == 9 - 4
    assert len(list(read_jsonl(p.run / "extract/rewrite.jsonl"))) == 9


def test_teacher_client_errors(fake_teacher: FakeTeacher) -> None:
    bad_path = TeacherConfig(base_url=fake_teacher.url.replace("/v1", "/nope"), retries=0)
    with Teacher(bad_path) as t, pytest.raises(TeacherError, match="refused the request: HTTP 404"):
        t.chat([{"role": "user", "content": "hi"}])
    with pytest.raises(TeacherError, match="PERSONAE_TEST_NO_SUCH_KEY"):
        Teacher(TeacherConfig(api_key_env="PERSONAE_TEST_NO_SUCH_KEY"))


def test_parse_json_reply() -> None:
    assert parse_json_reply('Sure!\n```json\n[{"a": 1}]\n```') == [{"a": 1}]
    assert parse_json_reply('prefix [{"a": 2}] suffix') == [{"a": 2}]
    with pytest.raises(ValueError):
        parse_json_reply("no json here")
    assert json.loads("[]") == []
