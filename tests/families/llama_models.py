"""The LLaMA-layout presets the decoder-only tests run on: tiny-llama (untied, no biases) and
tiny-qwen2 (tied, q/k/v biases).  Models, batches and checks are family_models'; the ones the
LLaMA tests import from here are re-exported."""

from family_models import batch, fresh_model, perturb_, site_modules

__all__ = ["TINY", "batch", "fresh_model", "perturb_", "site_modules"]

TINY = ("tiny-llama", "tiny-qwen2")
