"""Higgs Audio v2 LoRA workbench: inspect, convert, validate, train and evaluate voice datasets.

One module per step, each with a function of the same name as its CLI command::

    from workbench.convert import convert          # workbench convert
    from workbench.validate import validate        # workbench validate
    from workbench.split import split              # workbench split
    from workbench.inspection import inspect       # workbench inspect
    from workbench.fixes import fix                # workbench fix
    from workbench.launch import train_launch      # workbench train
    from workbench.evaluate import evaluate        # workbench evaluate
    from workbench.export import export            # workbench export
    from workbench.generate import speak           # workbench generate

    report = convert(["data/train.jsonl"], "work/converted.jsonl")
    checked = validate("work/converted.jsonl")
    split("work/converted.jsonl", "work/train.jsonl", "work/val.jsonl", by="speaker")

``import workbench`` itself loads nothing heavy (no torch).
"""

__version__ = "0.1.0"
