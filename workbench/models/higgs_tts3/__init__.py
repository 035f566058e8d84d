"""Higgs TTS 3 (``bosonai/higgs-tts-3-4b``): a fused audio embedding and tied head over ``Qwen3Model``.

The family behind the model seam (:data:`~workbench.models.higgs_tts3.family.HIGGS_TTS_3`): its
config and model class, the processor (prompt ids, delay pattern, codec), the sampler, sequences
from canonical samples, and the release layout (load and save).
"""

from workbench import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    configuration=("HiggsTTS3Config", "release_config"),
    modeling=("HiggsTTS3ForConditionalGeneration",),
    processing=("HiggsTTS3Processor",),
    release=("load_release", "save_release", "write_notice"),
    family=("HIGGS_TTS_3", "HiggsTTS3Family"),
)
