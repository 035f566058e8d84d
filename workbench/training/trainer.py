"""The Trainer of a run: LoRA on the family's modules, the workbench's Trainer and its arguments.

:func:`apply_lora` wraps the model with PEFT LoRA (a target that matches no module is an error, not
a run that trains nothing); :func:`trainer_class` adds to ``transformers.Trainer`` length-grouped
sampling, a loss that weighs every supervised audio code alike across micro-batches and ranks, and
per-codebook accuracy in evaluation; :func:`training_arguments` maps the run's parameters onto
``TrainingArguments``.
"""

from __future__ import annotations

from typing import Any

import torch

from workbench.training.params import TrainParams


# --- LoRA ----------------------------------------------------------------------------------------
def apply_lora(model: torch.nn.Module, params: TrainParams) -> torch.nn.Module:
    """Wrap ``model`` with PEFT LoRA on ``params.lora_target_modules``.

    Raises:
        ValueError: a target that matches no module (a typo would otherwise train nothing).
    """
    from peft import LoraConfig, get_peft_model

    from workbench.models.families import family_for
    from workbench.models.peft_wrapping import peft_wrapping

    family = family_for(model)
    targets = list(params.lora_target_modules or family.default_lora_targets)
    names = [n for n, _ in model.named_modules()]
    for field_name, wanted, examples in (
        ("lora_target_modules", targets, family.default_lora_targets),
        ("modules_to_save", params.modules_to_save or [], family.head_modules),
    ):
        unmatched = [t for t in wanted if not any(n == t or n.endswith("." + t) for n in names)]
        if unmatched:
            raise ValueError(
                f"{field_name} {unmatched} match no module of {type(model).__name__} ({family.title}); "
                f"expected names like {', '.join(examples)}"
            )
    config = LoraConfig(
        r=params.lora_r,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        target_modules=targets,
        modules_to_save=list(params.modules_to_save) if params.modules_to_save else None,
        bias="none",
    )
    with peft_wrapping():
        return get_peft_model(model, config)


def trainable_table(model: torch.nn.Module) -> list[dict[str, Any]]:
    """Trainable parameters per module kind, summed over layers.

    Rows: ``LoRA q_proj`` ... (attention), ``LoRA mlp.gate_proj`` ... (text FFN), ``LoRA
    audio_mlp.gate_proj`` ... (audio FFN), ``full audio_lm_head`` (``modules_to_save``), then the
    trainable total and the share of all parameters.
    """
    groups: dict[str, list[int]] = {}
    total = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if not p.requires_grad:
            continue
        parts = name.split(".")
        lora = next((i for i, x in enumerate(parts) if x.startswith("lora_")), None)
        if lora is not None:  # ...layers.0.mlp.gate_proj.lora_A.default.weight -> LoRA mlp.gate_proj
            kind = "LoRA " + ".".join(parts[max(0, lora - 2) : lora]).replace("self_attn.", "")
        elif "modules_to_save" in parts:  # ...audio_lm_head.modules_to_save.default.weight
            kind = "full " + parts[parts.index("modules_to_save") - 1]
        else:
            kind = "other " + ".".join(parts[-2:])
        groups.setdefault(kind, []).append(p.numel())
    rows = [{"module": k, "tensors": len(v), "parameters": sum(v)} for k, v in sorted(groups.items())]
    trainable = sum(r["parameters"] for r in rows)
    rows.append(
        {"module": "TOTAL trainable", "tensors": sum(r["tensors"] for r in rows), "parameters": trainable}
    )
    rows.append(
        {"module": f"of all parameters ({trainable / max(total, 1):.3%})", "tensors": "", "parameters": total}
    )
    return rows


# --- Trainer ---------------------------------------------------------------------------------------
class _WorkbenchTrainerMixin:
    """Length-grouped sampling from precomputed lengths; a training loss that weighs every supervised
    audio code alike across micro-batches and ranks; per-codebook accuracy in evaluation."""

    train_lengths: list[int] | None = None

    def _get_train_sampler(self, train_dataset=None):  # noqa: D401 - Trainer hook
        if self.train_lengths and self.args.train_sampling_strategy == "group_by_length":
            from workbench.training.collate import length_grouped_sampler

            return length_grouped_sampler(
                self.train_lengths,
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                seed=self.args.seed,
            )
        return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset):  # evaluation order does not matter; keep it simple
        return torch.utils.data.SequentialSampler(eval_dataset)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """One optimizer step's micro-batches and their supervised audio entries per codebook.

        The Trainer counts ``num_items_in_batch`` only for a ``labels`` key; counted here for
        ``audio_labels``, it takes the path it takes for ``labels``: the model sums its cross entropy
        and divides by the count, ``compute_loss`` scales by the ranks and ``training_step`` skips the
        division by the accumulation steps (see :mod:`workbench.training.loss`).
        """
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        if num_items_in_batch is not None or not self.model_accepts_loss_kwargs:
            return batch_samples, num_items_in_batch
        from workbench.training.loss import supervised_entries, supervised_per_codebook

        counted = supervised_entries(batch_samples)
        entries, codebooks = counted if counted else (torch.zeros((), dtype=torch.long), 1)
        # From here as transformers' _get_num_items_in_batch does for `labels`: the sum over the ranks
        # (every rank gathers, even one without batches), or a share per GPU under DataParallel.
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            entries = self.accelerator.gather(entries.to(device)).sum()
        elif self.args.n_gpu > 1:
            entries = entries // self.args.n_gpu
        if counted is None or not int(entries):
            return batch_samples, None
        num_items_in_batch = supervised_per_codebook(entries.to(device), codebooks)
        if self.args.n_gpu > 1 and num_items_in_batch.dim() == 0:
            num_items_in_batch = num_items_in_batch.unsqueeze(0).expand(self.args.n_gpu, -1)
        replicas = self.get_tp_size() * self.get_cp_size() * self.get_sp_size()  # ranks sharing a batch
        num_items_in_batch = num_items_in_batch / replicas
        return batch_samples, num_items_in_batch

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        if not model.training and "audio_labels" in inputs:
            from workbench.training.metrics import codebook_hits

            correct, total = codebook_hits(model, inputs, outputs.logits)
            self._acc = (
                (self._acc[0] + correct, self._acc[1] + total)
                if getattr(self, "_acc", None)
                else (correct, total)
            )
        return (loss, outputs) if return_outputs else loss

    def evaluation_loop(self, *args, **kwargs):
        self._acc = None
        output = super().evaluation_loop(*args, **kwargs)
        if self._acc is not None:
            prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
            correct = self.accelerator.reduce(self._acc[0], "sum").float()
            total = self.accelerator.reduce(self._acc[1], "sum").float().clamp(min=1)
            acc = (correct / total).tolist()
            for k, value in enumerate(acc):
                output.metrics[f"{prefix}_acc_cb{k}"] = value
            output.metrics[f"{prefix}_acc_mean"] = sum(acc) / len(acc)
        return output


def trainer_class() -> type:
    """``transformers.Trainer`` with the workbench's sampling, loss normalisation and accuracy."""
    from transformers import Trainer

    return type("WorkbenchTrainer", (_WorkbenchTrainerMixin, Trainer), {})


def _steps(value: int | float) -> int | float:
    """A step interval for the Trainer: whole steps as an int, a fraction of the run as it is."""
    return value if 0 < value < 1 else int(value)


def training_arguments(params: TrainParams, has_eval: bool) -> Any:
    """The run's ``transformers.TrainingArguments`` (evaluation steps only when ``has_eval``)."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=params.output_dir,
        use_cpu=not torch.cuda.is_available(),
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=params.batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps,
        learning_rate=params.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=params.warmup_ratio,  # a float in [0, 1) is a ratio of total steps
        weight_decay=params.weight_decay,
        max_grad_norm=params.max_grad_norm,
        num_train_epochs=params.num_epochs,
        max_steps=params.max_steps,
        bf16=params.mixed_precision == "bf16",
        fp16=params.mixed_precision == "fp16",
        activation_checkpointing=params.activation_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if params.activation_checkpointing else None,
        dataloader_num_workers=params.dataloader_num_workers,
        save_strategy="steps",
        save_steps=_steps(params.save_steps),
        save_total_limit=params.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=_steps(params.eval_steps) if has_eval else None,
        logging_steps=_steps(params.logging_steps),
        seed=params.seed,
        data_seed=params.seed,
        report_to=["tensorboard"],
        remove_unused_columns=False,
        label_names=["audio_labels"],
        prediction_loss_only=True,
        train_sampling_strategy="group_by_length" if params.group_by_length else "random",
        ddp_find_unused_parameters=False,
        ddp_timeout=params.ddp_timeout,
        disable_tqdm=False,
        include_num_input_tokens_seen="non_padding",  # real tokens in state and logs (benchmarks, tokens/s)
    )
