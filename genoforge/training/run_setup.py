"""The setup of a tune run (:class:`SetupMixin` of :class:`~genoforge.training.loop.Trainer`).

The memory check first (see :mod:`genoforge.training.loop`), then the shards, tokenizer and model
load, every epoch is planned up front from the shard index (row shape, micro-batches cut to whole
optimizer steps, ``grad_accum``), and the model is compiled, checkpointed, wrapped for DDP/FSDP
and given its optimizer; a checkpoint, if any, resumes it (:mod:`genoforge.training.run_artifacts`).
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np

from genoforge.console import warn
from genoforge.errors import CheckpointError, ConfigError, DeviceMemoryError, ShardFormatError
from genoforge.training import checkpoint as ckpt
from genoforge.training import parallelize as par
from genoforge.training.base_metrics import base_class_weights
from genoforge.training.data import (
    EpochPlan,
    RowShape,
    check_tokenizer_match,
    decoder_lengths,
    plan_epoch,
    plan_row_shape,
)
from genoforge.training.early_stopping import EarlyStopping


class SetupMixin:
    """Trainer methods that build a run: devices, data plan, model, optimizer, loop state."""

    def _setup(self) -> None:
        import torch

        from genoforge.genes.packed_reader import PackedShard
        from genoforge.model.io import load_model
        from genoforge.tokenizer.core import GenoTokenizer

        cfg = self.config
        self.env = env = par.init_distributed(cfg.device)
        self.device = env.device
        self.is_cuda = self.device.type == "cuda"
        torch.manual_seed(cfg.seed)
        if not cfg.skip_memory_check:  # before a weight loads: a model too big fails in a second
            self._check_memory()

        self.tokenizer = GenoTokenizer.load(self.model_dir)
        self.train_shard = PackedShard(self.train_path)
        self.val_shard = PackedShard(self.val_path)
        check_tokenizer_match(self.train_path, self.val_path, (self.train_shard, self.val_shard),
                              self.tokenizer, self.model_dir)
        if len(self.train_shard) == 0:
            raise ShardFormatError("holds no samples; bake more data", self.train_path)
        self.training_window = ckpt.training_window_of(self.train_path, self.train_shard)  # for predict
        self._warn_inert_flags()
        self.gen_windows = None
        if cfg.generate_samples:
            if env.distributed and cfg.strategy == "fsdp":
                # Ranks decode different windows for different numbers of steps, but every forward of
                # FSDP-sharded layers all-gathers over all ranks: they would wait on each other.
                if env.is_main:
                    warn("--generate_samples is not supported with --strategy fsdp; generative validation is off")
            else:  # every rank loads them: under DDP each decodes its share (see _generate)
                from genoforge.training.generate import load_validation_windows

                self.gen_windows = load_validation_windows(self.val_shard, self.tokenizer, cfg.generate_samples)
                if self.gen_windows.skipped and env.is_main:
                    warn(f"{self.val_path}: {self.gen_windows.skipped} of the first {cfg.generate_samples} "
                         "validation targets do not parse and are left out of generative validation; "
                         "re-bake the validation shard")

        model = load_model(self.model_dir, device="cpu")
        self.model_config = model.config
        if model.config.vocab_size < self.tokenizer.vocab_size:
            raise CheckpointError(
                f"{self.model_dir}: the model has {model.config.vocab_size} embedding rows but its "
                f"tokenizer {self.tokenizer.vocab_size} ids; run genoforge tokens resize"
            )
        from genoforge.training.flops import flop_model

        self.flops = flop_model(model, model.config)
        self.n_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
        if cfg.generative_loss_weight == 0 and env.distributed:
            raise ConfigError("--generative_loss_weight 0 skips the decoder, which DDP/FSDP cannot do "
                              "(its parameters get no gradient); run it in one process")
        if model.base_head is None and cfg.base_loss_weight > 0 and env.is_main:
            warn("the model has no per-base head (base_head_channels 0): --base_loss_weight has no effect")
        model.base_class_weights = base_class_weights(self.train_shard)
        model.base_boundary_weight = cfg.base_boundary_weight
        model.base_signal_weight = cfg.base_signal_weight
        model.to(self.device)
        model.train()
        self.raw_model = model

        # The plan: row shape from the training index, every epoch planned up front (index only).
        self.enc_len = self.train_shard.input_lengths().astype(np.int64)
        self.dec_len = decoder_lengths(self.train_shard.target_lengths())
        enc_multiple, dec_multiple = self._row_multiples()
        self.shape: RowShape = plan_row_shape(
            self.enc_len, self.dec_len, token_budget=cfg.token_budget, max_batch_size=cfg.max_batch_size,
            row_multiple=enc_multiple, decoder_multiple=dec_multiple, encoder_row_len=cfg.encoder_row_len,
            decoder_row_len=cfg.decoder_row_len,
        )
        self.packed_plans: dict[int, EpochPlan] = {}  # packed, not yet cut to whole steps
        self.plans: dict[int, EpochPlan] = {}
        self.grad_accum, micro_per_epoch = self._choose_grad_accum()
        self.step_micro = env.world_size * self.grad_accum
        for epoch in range(len(micro_per_epoch)):
            self._plan(epoch)  # cut to whole steps now: fixed_docs_per_row below reads every plan
        self.steps_per_epoch = [n // self.step_micro for n in micro_per_epoch]
        total = sum(self.steps_per_epoch)
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        if total == 0:
            raise ConfigError(
                f"{self.train_path}: {len(self.train_shard)} samples make {len(self._packed_plan(0))} micro-batches "
                f"of {self.shape.rows_per_batch} rows, fewer than one optimizer step needs (one micro-batch on each "
                f"of {env.world_size} process(es)); lower --max_batch_size or --token_budget, or bake more data"
            )
        self.total_steps = total
        from genoforge.training.optim import CosineSchedule, build_optimizer

        self.schedule = CosineSchedule.from_ratio(total, cfg.warmup_ratio, cfg.min_lr_ratio)
        val_enc = self.val_shard.input_lengths().astype(np.int64)
        val_dec = decoder_lengths(self.val_shard.target_lengths())
        self.val_plan = plan_epoch(val_enc, val_dec, self.shape, seed=cfg.seed, epoch=0,
                                   pack_window=cfg.pack_window, step_micro_batches=1, shuffle=False)
        self.fixed_docs_per_row = None
        if cfg.compile or self.is_cuda:  # constant latent slots: one graph, no FlexAttention recompiles
            rows = [r for p in (*self.plans.values(), self.val_plan) for mb in p.micro_batches for r in mb]
            self.fixed_docs_per_row = max((len(r) for r in rows), default=1)

        # Wrapping order: compile -> activation checkpointing -> DDP/FSDP -> optimizer. Each block
        # is compiled first and the checkpoint wraps the compiled block: compiling a checkpointed
        # block traces flex_attention inside the checkpoint's higher-order op, which torch 2.11
        # cannot do (pytorch/pytorch#167116; the seed preset failed so on an H100).
        if cfg.compile:
            par.compile_blocks(model)
        if self.is_cuda and not (env.distributed and cfg.strategy == "fsdp"):
            # bf16 expert copies re-cast once per optimizer step instead of every micro-batch:
            # seed fwd+bwd 190.9 -> 184.5 ms on an H100 (benchmarks/RESULTS.md, "Model"); the
            # gradients still reach the fp32 weights, bitwise as before (tests/test_moe_bf16_copies).
            # Not under FSDP2: it swaps the experts' weights between sharded and unsharded tensors
            # around every layer's forward, which the copies' version-counter refresh does not track.
            model.enable_bf16_expert_copies()
        if cfg.gradient_checkpointing:
            par.apply_activation_checkpointing(model)
        self.model = par.wrap_model(model, env, cfg.strategy)
        self.fsdp = env.distributed and cfg.strategy == "fsdp"
        self.optimizer = build_optimizer(
            par.unwrap(self.model), lr=cfg.lr, weight_decay=cfg.weight_decay,
            betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_eps, fused=self.is_cuda,
        )
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.autocast = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if self.is_cuda and cfg.bf16 else nullcontext
        )

        # Loop state (replaced by a checkpoint's on resume).
        self.global_step = 0
        self.epoch = 0
        self.step_in_epoch = 0
        self.tokens_seen = 0
        self.early = EarlyStopping(patience=cfg.early_stopping, min_delta=cfg.early_stopping_min_delta)
        self.last_eval_step = -1
        self.last_saved_step = -1
        self._resume()

    def _row_multiples(self) -> tuple[int, int]:
        """Row-length multiples: ``row_multiple`` and the attention blocks of each stream.

        On CUDA FlexAttention's block is max(128, block size rounded up to 128); a row that is not
        a whole number of blocks would let the mask predicate index past the row.

        Raises:
            ConfigError: an explicit row length that is not such a multiple.
        """
        cfg, mc = self.config, self.model_config

        def block(size: int) -> int:
            return max(128, -(-size // 128) * 128) if self.is_cuda else size

        enc = math.lcm(cfg.row_multiple, block(mc.encoder_block_size))
        dec = math.lcm(cfg.row_multiple, block(mc.decoder_block_size))
        for name, value, multiple in (("encoder_row_len", cfg.encoder_row_len, enc),
                                      ("decoder_row_len", cfg.decoder_row_len, dec)):
            if value % multiple:
                raise ConfigError(f"{name} {value} is not a multiple of {multiple} (row_multiple and the "
                                  f"model's attention block); use a multiple of {multiple}")
        return enc, dec

    def _warn_inert_flags(self) -> None:
        cfg, given = self.config, self.config_sources
        if not self.is_cuda:
            if cfg.empty_cache_steps and self.env.is_main:
                warn("--empty_cache_steps has no effect on CPU (there is no CUDA cache to empty)")
            if cfg.log_memory and self.env.is_main:
                warn("--log_memory shows host memory only on CPU (no GPU memory to report)")
        if not self.env.distributed and given.get("strategy") in ("flag", "config file") and self.env.is_main:
            warn(f"--strategy {cfg.strategy} has no effect in a single process (launch with torchrun)")

    def _packed_plan(self, epoch: int) -> EpochPlan:
        """Epoch ``epoch`` packed into micro-batches, before the cut to whole optimizer steps."""
        if epoch not in self.packed_plans:
            self.packed_plans[epoch] = plan_epoch(
                self.enc_len, self.dec_len, self.shape, seed=self.config.seed, epoch=epoch,
                pack_window=self.config.pack_window, step_micro_batches=1,
            )
        return self.packed_plans[epoch]

    def _plan(self, epoch: int) -> EpochPlan:
        """Epoch ``epoch``'s micro-batches cut to whole optimizer steps of ``self.step_micro``
        (what plan_epoch with step_micro_batches=step_micro gives; see EpochPlan.whole_steps)."""
        if epoch not in self.plans:
            packed = self._packed_plan(epoch)
            del self.packed_plans[epoch]  # not needed again: the cut plan shares its arrays
            self.plans[epoch] = packed.whole_steps(self.step_micro)
        return self.plans[epoch]

    def _choose_grad_accum(self) -> tuple[int, list[int]]:
        """The micro-batches per optimizer step on each process, and the micro-batches of each
        epoch the run reaches (planned up front, index only: the schedule's length must be known
        before the first step).

        ``--grad_accum`` A, unless an epoch has fewer than W x A micro-batches (W processes):
        then the largest accumulation every such epoch allows, ``min(micro-batches) // W``,
        with one warning. A small bake then still trains (the recipe's ``--grad_accum 64`` on one
        species) instead of planning zero steps. The choice is a pure function of the data plan's
        inputs plus ``--epochs`` and ``--max_steps`` (all in :meth:`data_signature`), so a resumed
        run recomputes the same one; the checkpoint records it and resume verifies it.

        Epochs are planned until they cover the run: all of them, or as many as ``--max_steps``
        needs; an epoch with fewer micro-batches than processes ends the run before it.
        """
        cfg, world = self.config, self.env.world_size
        counts: list[int] = []
        accum = cfg.grad_accum
        for epoch in range(cfg.epochs):
            n_micro = len(self._packed_plan(epoch))
            if n_micro < world:
                break
            counts.append(n_micro)
            accum = min(cfg.grad_accum, min(counts) // world)
            if cfg.max_steps and sum(n // (world * accum) for n in counts) >= cfg.max_steps:
                break
        if accum < cfg.grad_accum and self.env.is_main:
            warn(f"--grad_accum {cfg.grad_accum} needs {world * cfg.grad_accum} micro-batches per optimizer step "
                 f"({world} process(es) x {cfg.grad_accum}), but an epoch of {self.train_path.name} has only "
                 f"{min(counts)} micro-batches of {self.shape.rows_per_batch} rows: accumulating {accum} per "
                 f"process instead ({world * accum} per step); bake more data, or pass a --grad_accum of at "
                 f"most {accum} to choose yourself")
        return accum, counts

    def _check_memory(self) -> None:
        """Refuse a model whose training state cannot fit the device (genoforge.training.memory_check),
        on every process at once: a process that went on alone would wait in DDP's first broadcast."""
        from genoforge.training.memory_check import check_training_memory

        error = None
        try:
            check_training_memory(self.model_dir, self.device, world_size=self.env.world_size,
                                  strategy=self.config.strategy)
        except DeviceMemoryError as exc:
            error = exc
        if par.any_rank(error is not None, self.env):
            raise error or DeviceMemoryError(
                "another process of this run has too little memory for the model (its error says how much); "
                "pass --skip_memory_check to try anyway")
