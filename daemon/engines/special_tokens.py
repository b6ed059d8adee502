"""A model's own special tokens, removed from every message before it is templated.

    clean = SpecialTokenFilter(special_tokens_of(tokenizer))
    chat = [{"role": m.role, "content": clean(m.content)} for m in messages]

`prompt.neutralise` knows the control tokens of the common chat formats and folds
look-alike characters first; this knows the exact list of the model in use (SmolLM2
also parses `<repo_name>`, `<file_sep>`, `<jupyter_code>` and others out of plain
text), whatever the base model is. Engines that tokenize apply it at the last step; the
llama.cpp engine, which sends messages to a server that templates them, reads the
list from the GGUF file (`special_tokens_of_gguf`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path


def special_tokens_of(tokenizer: object) -> tuple[str, ...]:
    """Every special token a transformers tokenizer would parse out of plain text: its
    named ones and every added token marked special."""
    tokens = set(getattr(tokenizer, "all_special_tokens", None) or ())
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    tokens |= {t.content for t in decoder.values() if getattr(t, "special", False)}
    return tuple(sorted(t for t in tokens if t.strip()))


#: llama.cpp's token types that its tokenizer parses out of text (`parse_special`):
#: CONTROL and USER_DEFINED (see gguf.TokenType)
_GGUF_PARSED_TYPES = frozenset({3, 4})


def special_tokens_of_gguf(gguf_file: str | Path) -> tuple[str, ...]:
    """The same list for a GGUF model, read from its tokenizer metadata: every token
    llama.cpp would parse out of a templated prompt."""
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf_file)).fields
    tokens, types = fields.get("tokenizer.ggml.tokens"), fields.get("tokenizer.ggml.token_type")
    if tokens is None or types is None:
        return ()
    found = {
        bytes(tokens.parts[t]).decode("utf-8", "replace")
        for t, k in zip(tokens.data, types.data, strict=True)
        if int(types.parts[k][0]) in _GGUF_PARSED_TYPES
    }
    return tuple(sorted(t for t in found if t.strip()))


class SpecialTokenFilter:
    """Replaces each of `tokens` in a text by a space, until none is left."""

    def __init__(self, tokens: Sequence[str]) -> None:
        alternatives = sorted({t for t in tokens if t.strip()}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        previous = None
        while previous != text:  # removing one must not assemble another
            previous, text = text, self._pattern.sub(" ", text)
        return text
