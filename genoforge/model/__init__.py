"""The genoforge model: DNABERT-2 encoder -> latent compressor -> MoE decoder (plain PyTorch).

Public API (import from the submodules; this package imports nothing, so that importing
``genoforge.model.config`` stays free of torch-heavy modules):

* ``config``: ``ModelConfig`` (every hyperparameter) and ``preset("debug" | "small" | "seed")``;
* ``model``: ``GenoforgeModel(config)``, ``forward(batch, label_smoothing=0.0) -> ModelOutput``,
  ``encode(batch) -> Memory``; incremental decoding through ``model.decoder``:
  ``cross_kv(memory.states_BMD)`` + ``step(token_ids, cache, active)`` on a
  ``decode_cache.RowCache``;
* ``io``: ``save_model(model, dir, tokenizer)``, ``load_model(dir, device, dtype)``,
  ``read_model_config(dir)``;
* ``init``: ``init_model(...)`` (``genoforge model init``); ``resize``: ``resize_model(...)``
  (``genoforge tokens resize``); ``info``: ``summary(config)`` (``genoforge model info``);
* ``dnabert``: loading DNABERT-2 checkpoints without remote code.
"""
