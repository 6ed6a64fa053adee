"""Prompt tuning (Lester et al., 2021): ``length`` trainable vectors prepended to a stack's input.

``Prompt(length, d)(batch_size) -> (batch_size, length, d)``, the same vectors for every example
(an expanded view, not a copy).  ``length * d`` parameters.

Initialisation: ``vocab``: copies of the embeddings of ``length`` token ids drawn uniformly from the
whole vocabulary with the global RNG (:meth:`Prompt.init_from_vocab_`; needs the backbone's token
embedding, passed as ``build(..., token_embedding=...)``); ``normal``: N(0, 0.02^2).
There is no identity: prompts lengthen the sequence, so :meth:`make_identity_` raises.
"""

from __future__ import annotations

import torch
from torch import nn

from vlsurgery.errors import UsageError

#: Standard deviation of ``init=normal`` prompts.
PROMPT_INIT_STD = 0.02


def embedding_weight(embedding) -> torch.Tensor:
    """The (V, d) matrix of an ``nn.Embedding`` (or of a tensor given directly)."""
    weight = embedding.weight if isinstance(embedding, nn.Module) else embedding
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise UsageError(f"expected an nn.Embedding or a (vocab, d) tensor, got {type(embedding).__name__}")
    return weight


class Prompt(nn.Module):
    """P in R^{length x d}; forward(batch_size) broadcasts it to (batch_size, length, d)."""

    def __init__(self, length: int, d: int):
        super().__init__()
        self.prompt = nn.Parameter(torch.empty(length, d))
        self.init_normal_()

    @torch.no_grad()
    def init_normal_(self) -> "Prompt":
        nn.init.normal_(self.prompt, std=PROMPT_INIT_STD)
        return self

    @torch.no_grad()
    def init_from_vocab_(self, token_embedding) -> "Prompt":
        """Copy the embeddings of ``length`` token ids drawn uniformly (global RNG) from the vocabulary."""
        weight = embedding_weight(token_embedding)
        if weight.shape[1] != self.prompt.shape[1]:
            raise UsageError(f"token embedding width {weight.shape[1]} != prompt width {self.prompt.shape[1]}")
        ids = torch.randint(weight.shape[0], (self.prompt.shape[0],))
        self.prompt.copy_(weight.detach()[ids.to(weight.device)].to(self.prompt))
        return self

    def make_identity_(self):
        raise UsageError("a prompt lengthens the stack's input: it has no identity setting "
                         "(leave prompt sites out when checking a compiled model against the original)")

    def forward(self, batch_size: int) -> torch.Tensor:
        return self.prompt.unsqueeze(0).expand(batch_size, -1, -1)
