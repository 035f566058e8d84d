"""Benchmarks: throughput, memory and generation length, printed as ratios (not timed tests).

Takes in a size (records, minutes of audio, steps) and a model choice; gives out one result per
stage with the machine it ran on: ``data`` (convert and validate, each in a fresh process),
``train`` (codes cache, length grouping, LoRA steps), ``generate`` (where generation stops after an
original-layout import), ``prepare`` (segmentation and transcription, times real time). They sit
on top with the CLI: each uses the stages as a user would.
"""

from workbench import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    data=("bench_data",),
    train=("bench_train",),
    generate=("bench_generate",),
    prepare=("bench_prepare",),
)
