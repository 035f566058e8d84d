"""Data: from source files and long recordings to canonical samples that training can trust.

Takes in audio with transcripts in any of the source formats (``formats/``, read by ``readers``),
clip datasets from stage 00 among them, and what a probe learns of each audio file (``probe``).
Gives out canonical samples (``sample``: JSON Lines, split by ``convert`` into trainable, prompts
and rejected), the one sample contract that decides what is trainable (``contract``, shared by
convert, validate and the training collator), validation findings with stable codes (``validate``,
``validate_rules``, ``findings``), fix recipes (``recipe``) replayed by ``fixes`` (trimmed copies by
``trim``), a leak-free train/validation split (``split``) and per-sample tables (``inspection``,
``survey``, ``tables``). Each step is a function named like its module, as the CLI names it:
``convert.convert``, ``validate.validate``, ``split.split``, ``fixes.fix``, ``inspection.inspect``.
Nothing here loads a model or torch.
"""

from workbench import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    sample=("Audio", "Message", "Sample", "read_samples", "write_samples"),
    contract=("check_sample", "Verdict"),
    findings=("Finding",),
    validate=("ValidationReport",),
)
