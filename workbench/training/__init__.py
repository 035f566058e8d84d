"""Training: canonical samples and a model in, a LoRA adapter and its checkpoints out.

Takes in the training parameters (``params``: one typed schema, YAML files, ``-p NAME VALUE``
overrides, launch settings; each parameter declared once with ``param_schema``, which also reads
values into their types and gives the ``--flags``, README tables and notebook cells), trainable samples from the data stage and a model from the models
stage. Gives out the audio codes of every clip, encoded once into a content-addressed cache
(``codes``, keyed by the files' content hashes from ``content_hashes``), batches built exactly as inference builds them with labels only on target audio
(``collate``), the validator's context-length rule for a model (``context``), per-codebook accuracy
(``metrics``), resumable checkpoints (``checkpoints``), a run's data checks, codes and schedule
(``preparation``), its Trainer, arguments and callbacks (``trainer``, ``callbacks``), the adapter,
metrics and run record of a ``transformers.Trainer`` run on one rank (``train``), and the launcher
that starts notebook 04 on every rank of an ``accelerate launch`` (``launch``).
"""

from workbench import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    params=("ParamsError", "TrainParams", "LaunchParams", "load_train_params"),
    codes=("CodesCache",),
    collate=("HiggsAudioCollator",),
    context=("length_check",),
    launch=("train_launch",),
)
