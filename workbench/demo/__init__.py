"""Demo: tiny random models, the demo dataset, synthetic recordings and the demo pipeline.

What the tests, the benchmarks and ``workbench demo`` run on, built locally and deterministically, so
that every stage has something real to work on without a download; no stage imports it. Takes in
a folder to write into and a seed. Gives out a tiny random stack of either model family
(``tiny_models.make_tiny_model`` over ``tiny_higgs_audio_v2`` and ``tiny_higgs_tts3``), a tiny
random Whisper for the speech-recognition paths (``tiny_whisper``), the embedded demo dataset of
synthetic voices in several source formats with planted defects (``dataset``), long recordings
with known pauses spoken by ``espeak-ng`` or the demo voices (``recordings``), and the step
notebooks run headless on all of it (``pipeline``, ``workbench demo``).
"""

from workbench import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    tiny_models=("make_tiny_model",),
    tiny_higgs_audio_v2=("make_tiny_higgs_audio_v2",),
    tiny_higgs_tts3=("make_tiny_tts3",),
    tiny_whisper=("build_tiny_whisper",),
    dataset=("demo_data", "demo_inputs"),
    recordings=("demo_recordings", "long_recording", "recording_of_length"),
    pipeline=("run_demo", "DemoResult"),
)
