"""The languages a Canary tokenizer supports, read from its aggregate parts or its special tokens."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from berth_operator.api.modeldeployment import (
    TRANSLATION_HUB,
    supported_pairs_sentence,
    translation_pair_supported,
)

from berth_runtime.server.errors import BadRequest

SPECIAL_TOKENIZER = "spl_tokens"
# <|en|>, <|de|>, <|en-US|>: prompt tokens that name a language (<|pnc|>, <|itn|> ... do not)
LANGUAGE_TOKEN = re.compile(r"^<\|([a-z]{2}(?:-[A-Z]{2})?)\|>$")


class UnsupportedLanguage(BadRequest):
    type = "UnsupportedLanguage"


class UnsupportedLanguagePair(BadRequest):
    type = "UnsupportedLanguagePair"


def languages_from_tokens(tokens: Iterable[str]) -> list[str]:
    """Language codes among prompt tokens, in vocabulary order."""
    found = (match.group(1) for token in tokens if (match := LANGUAGE_TOKEN.match(token)))
    return list(dict.fromkeys(found))


def supported_languages(tokenizer: Any) -> list[str]:
    """An aggregate tokenizer (CanaryTokenizer): its language parts that have a prompt token; one
    SentencePiece tokenizer (CanaryBPETokenizer): the language tokens in its vocabulary."""
    parts = [lang for lang in getattr(tokenizer, "langs", None) or [] if lang != SPECIAL_TOKENIZER]
    special = getattr(tokenizer, "special_tokens", None)
    if parts:
        if isinstance(special, dict) and special:
            return [lang for lang in parts if f"<|{lang}|>" in special]
        return parts
    vocab = getattr(tokenizer, "vocab", None)
    if vocab is None and hasattr(tokenizer, "tokenizer"):  # SentencePiece's own processor
        processor = tokenizer.tokenizer
        vocab = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    return languages_from_tokens(vocab or [])


def check_language(language: str, supported: list[str], role: str) -> str:
    """The language if the model knows it, else a 400 naming it and the supported ones."""
    if language not in supported:
        raise UnsupportedLanguage(
            f"{role} language '{language}' is not supported by this model; "
            f"supported: {', '.join(supported)}"
        )
    return language


def check_pair(source: str, target: str, what: str = "this request") -> tuple[str, str]:
    """(source, target) if Canary can translate between them, else a 400 naming the pairs."""
    if not translation_pair_supported(source, target):
        raise UnsupportedLanguagePair(
            f"{what} asks for a translation from '{source}' to '{target}'; "
            f"{supported_pairs_sentence()}: set source_lang or target_lang to "
            f"'{TRANSLATION_HUB}', or both to the same language"
        )
    return source, target
