"""Higgs Audio v2 LoRA workbench: inspect, convert, validate, train and evaluate voice datasets."""

__version__ = "0.1.0"
