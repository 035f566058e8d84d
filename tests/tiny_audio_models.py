"""Tiny random optional-metric models, built and saved locally (nothing is downloaded).

- :func:`build_tiny_whisper`: a Whisper speech-recognition model that
  ``transformers.pipeline("automatic-speech-recognition", model=folder)`` loads and runs, producing
  some (random) text (it lives in :mod:`workbench.demo.tiny_whisper`, so ``workbench bench prepare``
  builds the same one).
- :func:`build_tiny_xvector`: a WavLM x-vector speaker model that ``AutoFeatureExtractor`` and
  ``AutoModelForAudioXVector`` load.

Both take well under a second to build and are about 200 KB on disk.
"""

from __future__ import annotations

from pathlib import Path

from workbench.demo.tiny_whisper import WHISPER_SPECIAL_TOKENS, build_tiny_whisper

__all__ = ["WHISPER_SPECIAL_TOKENS", "build_tiny_whisper", "build_tiny_xvector"]


def build_tiny_xvector(out: str | Path, seed: int = 0) -> Path:
    """Build a random tiny WavLM x-vector model (1 layer, width 32, 16-dim embeddings) into ``out``.

    Returns:
        ``out`` as a Path (model and a 16 kHz ``Wav2Vec2FeatureExtractor`` inside).
    """
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    out = Path(out)
    config = WavLMConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        num_buckets=32,
        max_bucket_distance=100,
        tdnn_dim=(16, 16, 16, 16, 32),
        xvector_output_dim=16,
    )
    torch.manual_seed(seed)
    model = WavLMForXVector(config).eval()
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    model.save_pretrained(out)
    extractor.save_pretrained(out)
    return out
