"""Models: Higgs Audio v2 model folders in, loaded models and processors out, offline.

Takes in a local model folder, a hub id already in the Hugging Face cache, or a checkpoint in the
original ``boson_multimodal`` layout (``folder`` finds and reads them; ``original_format`` maps
weights and configs, ``original_convert`` converts once and caches). Gives out the model and its
processor (``model``), the tiny random stack the tests and the demo run on, a full-size random
stack for benchmarks, merged or original-layout exports of an adapter (``export``), the chat
template and special tokens (``chat_template``) and a tiny random Whisper (``tiny_asr``). A missing
model is a :class:`ModelNotFoundError` naming the path; nothing is downloaded.
"""

from workbench import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    folder=("ModelNotFoundError", "resolve_model_path"),
    model=("load_model_and_processor", "load_processor", "make_tiny_model"),
    original_convert=("import_original", "export_original"),
)
