"""The target grammar as a finite automaton over token ids, for constrained decoding.

STUB: the API is final, the bodies are being filled in.

    grammar = TargetGrammar(tokenizer_or_vocab, window_size=10000)
    state = grammar.start_state()
    while not grammar.is_final(state):
        mask = grammar.allowed_mask(state)      # numpy bool [vocab_size]
        token_id = pick(logits, mask)
        state = grammar.advance(state, token_id)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class TargetGrammar:
    """Automaton accepting exactly the token sequences ``parse_target_tokens`` accepts.

    Args:
        vocab: a token -> id mapping, or an object with ``token_to_id(token)`` and ``vocab_size``
            (a GenoTokenizer).
        window_size: coordinates are limited to the window (ends <= W, starts < W).
        max_records: records per target, so decoding always ends.
        max_exons: exons per transcript.
    """

    def __init__(
        self,
        vocab: Mapping[str, int] | Any,
        window_size: int | None = None,
        max_records: int = 512,
        max_exons: int = 1000,
    ):
        raise NotImplementedError

    def start_state(self) -> Any:
        raise NotImplementedError

    def allowed_mask(self, state: Any) -> np.ndarray:
        """Boolean mask over the vocabulary of the ids allowed next."""
        raise NotImplementedError

    def allowed_ids(self, state: Any) -> np.ndarray:
        """The ids allowed next, sorted."""
        raise NotImplementedError

    def advance(self, state: Any, token_id: int) -> Any:
        """The state after ``token_id``; raises ValueError for a token that is not allowed."""
        raise NotImplementedError

    def is_final(self, state: Any) -> bool:
        """True once ``<eos>`` has been accepted."""
        raise NotImplementedError
