"""Models: Higgs Audio v2 and Higgs TTS 3 folders in, loaded models and processors out, offline.

Two model families sit behind one seam (``family``: what a family decides; ``families``: which
family a folder, model or processor is, and loading through it): Higgs Audio v2 (``higgs_audio_v2``,
on transformers' native classes in ``model``) and Higgs TTS 3 (``higgs_tts3``: a fused audio
embedding and tied head over transformers' ``Qwen3Model``, loaded from the release layout).
Takes in a local model folder, a hub id already in the Hugging Face cache, or a Higgs Audio v2
checkpoint in the original ``boson_multimodal`` layout (``folder`` finds and reads them;
``original_format`` maps weights and configs, ``original_convert`` converts once and caches). Gives
out the model and its processor, a full-size random Higgs Audio v2 for benchmarks and the parts any
stack built from scratch shares (``random_full``), merged exports of an adapter (``export``) and the
chat template and special tokens (``chat_template``). A missing model is a
:class:`ModelNotFoundError` naming the path; nothing is downloaded.
"""

from workbench import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    folder=("ModelNotFoundError", "resolve_model_path"),
    families=("detect_family", "family_for", "load_model_and_processor", "load_processor"),
    original_convert=("import_original", "export_original"),
)
