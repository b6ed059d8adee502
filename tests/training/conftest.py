"""Fixtures for the training tests: the bundled story, recipes in tmp dirs, a teacher."""

from __future__ import annotations

import os

# see personae.training.cli: spinning OpenMP threads make training 8x slower on a busy CPU
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "training" / "examples"
STORY = EXAMPLES / "hollowmere.md"


def write_recipe(tmp_path: Path, body: str = "", *, sources: tuple[Path, ...] = (STORY,)) -> Path:
    """A recipe for the default cast over `sources`, run dir and store under tmp_path."""
    src = ", ".join(json.dumps(str(s)) for s in sources)
    text = f"""name = "test"
sources = [{src}]

[[characters]]
id = "bram"
pronouns = "he"
aliases = ["the smith"]

[[characters]]
id = "mara"
pronouns = "she"
aliases = ["Mara Quill", "the archivist"]

[[characters]]
id = "wren"
pronouns = "she"

[output]
run_dir = "run"
adapters_dir = "store"
{body}
"""
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return path


class FakeTeacher:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 that answers by rule.

    - rewrite requests: the passage with the character's name and pronouns turned into
      "I"/"my" (or left in the third person when the passage mentions "Pike", so the
      third-person check has something to reject);
    - Q&A requests: one answer copied from the chunk (supported) and one invented.
    `fail_after` makes it answer 503 from that request on (a teacher going down).
    """

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_after: int | None = None
        teacher = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                teacher.requests.append(body)
                if teacher.fail_after is not None and len(teacher.requests) > teacher.fail_after:
                    self.send_error(503, "overloaded")
                    return
                content = teacher.answer(body["messages"])
                data = json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def answer(self, messages: list[dict]) -> str:
        user = messages[-1]["content"]
        if "first person, past tense" in user:
            name = re.match(r"Character: (\w+)", user).group(1)
            passage = user.split("\n\n", 1)[1]
            if "Pike" in passage:
                return passage
            out = re.sub(rf"\b{name}(?:['’]s)\b", "my", passage)
            out = re.sub(rf"\b{name}\b", "I", out)
            out = re.sub(r"\b(he|she)\b", "I", out, flags=re.I)
            return re.sub(r"\b(his|her)\b", "my", out, flags=re.I)
        chunk = user.split("Text:\n\n", 1)[1].split("\n\nWrite ", 1)[0]
        sentence = re.split(r"(?<=[.!?])\s", chunk.replace("\n", " "))[0]
        pairs = [
            {"question": "What happened?", "answer": f"I saw it myself. {sentence}"},
            {
                "question": "Where have you been?",
                "answer": "I sailed to Zanzibar with the Emperor of Mars and his forty dragons.",
            },
        ]
        return "Here you are:\n```json\n" + json.dumps(pairs) + "\n```"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_teacher() -> Iterator[FakeTeacher]:
    t = FakeTeacher()
    yield t
    t.close()


@pytest.fixture
def dead_url() -> str:
    """A 127.0.0.1 URL where nothing listens."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"
