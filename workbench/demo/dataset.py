"""The embedded demo dataset: synthetic voices in several source formats, with planted defects.

Three "speakers" are voiced signals with distinct pitch and formants (so they sound and measure
different); utterance length follows the text. The files cover the formats people bring
(manifest, paired, mixed, chatml, ljspeech, a folder of clips with transcripts) and the defects they hit, so every step of the
workbench has something real to show. Nothing is downloaded; output is deterministic.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from workbench.audio import write_wav
from workbench.files import write_json, write_text

SAMPLE_RATE = 24_000
CHARS_PER_SECOND = 14.0


@dataclass(frozen=True)
class Voice:
    name: str
    f0: float  # mean pitch in Hz
    formants: tuple[float, float, float]  # formant centre frequencies in Hz


VOICES = (
    Voice("spk_low", 105.0, (520.0, 1450.0, 2450.0)),
    Voice("spk_mid", 175.0, (680.0, 1250.0, 2650.0)),
    Voice("spk_high", 245.0, (820.0, 1900.0, 3050.0)),
)

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A gentle breeze moved through the open window.",
    "We will meet again at the old station tomorrow.",
    "Please bring the blue notebook to the meeting.",
    "The river was calm and bright in the morning light.",
    "Every small step counts when you learn something new.",
    "She found the key under a pile of autumn leaves.",
    "Music filled the hall long after the concert ended.",
    "He wrote a short letter and sealed it carefully.",
    "Fresh bread smells wonderful on a cold winter day.",
    "The children laughed as the kite rose higher.",
    "Turn left at the bakery and walk two more blocks.",
)


def synthesize(voice: Voice, text: str, seed: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A voiced, speech-like signal for ``text``: pulse train, syllable envelope, formant filters."""
    rng = np.random.default_rng(seed)
    seconds = max(1.0, len(text) / CHARS_PER_SECOND)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    contour = voice.f0 * (1.0 + 0.08 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)) - 0.05 * t / seconds)
    phase = np.cumsum(contour) / sample_rate
    source = (phase % 1.0) * 2.0 - 1.0  # sawtooth: rich in harmonics like a glottal source
    source += 0.03 * rng.standard_normal(n)
    syllables = max(2, int(seconds * 4))
    envelope = np.clip(np.sin(np.pi * syllables * t / seconds) ** 2 * 1.2, 0, 1) ** 0.6
    out = np.zeros(n)
    for k, formant in enumerate(voice.formants):
        centre = formant * (1.0 + 0.1 * np.sin(2 * np.pi * (k + 1) * 0.9 * t[:: sample_rate // 100].mean()))
        r = np.exp(-np.pi * (80.0 + 40.0 * k) / sample_rate)
        theta = 2 * np.pi * centre / sample_rate
        out += lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], source) / (k + 1)
    out *= envelope
    pad = np.zeros(int(0.12 * sample_rate))
    out = np.concatenate([pad, out, pad])
    return (0.5 * out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def _jsonl(path: Path, records: list) -> None:
    """Write records as JSON Lines; a string record is written as is (the planted malformed line)."""
    write_text(
        path,
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records),
    )


def demo_data(out_dir: str | os.PathLike, overwrite: bool = False) -> dict[str, object]:
    """Write the demo dataset into ``out_dir``.

    Args:
        out_dir: target folder (created).
        overwrite: allow writing into a non-empty folder.

    Returns:
        ``{"inputs": [...source files/folders...], "expected": {...counts...}, "defects": {...}}``,
        also saved as ``out_dir/demo.json``.

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is false.
    """
    out = Path(out_dir).absolute()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty. Hint: pass --overwrite or choose an empty folder.")
    wavs = out / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    low, mid, high = VOICES

    def clip(voice: Voice, i: int) -> str:
        text = SENTENCES[i % len(SENTENCES)]
        audio = synthesize(voice, text, seed=i * 31 + int(voice.f0))
        name = f"{voice.name}_{i:02d}.wav"
        write_wav(wavs / name, audio)
        return f"wavs/{name}"

    # manifest.jsonl: spk_low, 8 good utterances + defects (missing file, silent, empty transcript, bad line)
    manifest = []
    for i in range(8):
        manifest.append({"audio_filepath": clip(low, i), "text": SENTENCES[i], "speaker": low.name})
    manifest.append(
        {
            "audio_filepath": "wavs/spk_low_99_missing.wav",
            "text": "This file was never recorded.",
            "speaker": low.name,
        }
    )
    write_wav(wavs / "spk_low_silent.wav", np.zeros(2 * SAMPLE_RATE, np.float32))
    manifest.append(
        {
            "audio_filepath": "wavs/spk_low_silent.wav",
            "text": "Silence is all you will hear.",
            "speaker": low.name,
        }
    )
    manifest.append({"audio_filepath": clip(low, 8), "text": "", "speaker": low.name})
    manifest.insert(5, '{"audio_filepath": "wavs/spk_low_03.wav", "text": "broken line"')  # malformed JSON
    _jsonl(out / "manifest.jsonl", manifest)

    # paired.json: spk_mid voice cloning pairs (a JSON array) + one prompt without target audio
    paired = []
    refs = [clip(mid, i) for i in range(5)]
    for i in range(1, 5):
        paired.append(
            {
                "id": f"paired_{i}",
                "speaker": mid.name,
                "reference_audio": refs[0],
                "reference_text": SENTENCES[0],
                "target_text": SENTENCES[i],
                "target_audio": refs[i],
            }
        )
    paired.append(
        {
            "id": "paired_prompt",
            "speaker": mid.name,
            "reference_audio": refs[0],
            "reference_text": SENTENCES[0],
            "target_text": "A sentence this voice has never said.",
        }
    )
    write_text(out / "paired.json", json.dumps(paired, indent=1))

    # mixed.jsonl: spk_high, [ref text, ref audio, instruction + target text] in the user turn
    highs = [clip(high, i) for i in range(5)]
    mixed = []
    for i in range(1, 4):
        mixed.append(
            {
                "id": f"mixed_{i}",
                "speaker": high.name,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            SENTENCES[0],
                            {"type": "audio", "audio_url": highs[0]},
                            f"Please generate speech for given text in reference audio's voice: {SENTENCES[i]}",
                        ],
                    },
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "text", "text": SENTENCES[i]},
                            {"type": "audio", "audio_url": highs[i]},
                        ],
                    },
                ],
            }
        )
    _jsonl(out / "mixed.jsonl", mixed)

    # chatml.jsonl: original Higgs tooling ChatML, incl. a 44.1 kHz stereo clip
    stereo = synthesize(mid, SENTENCES[6], seed=606, sample_rate=44_100)
    write_wav(wavs / "spk_mid_stereo44k.wav", np.stack([stereo, 0.9 * stereo], axis=1), sample_rate=44_100)
    chat_targets = [
        (clip(mid, 5), SENTENCES[5]),
        ("wavs/spk_mid_stereo44k.wav", SENTENCES[6]),
        (clip(mid, 7), SENTENCES[7]),
    ]
    chatml = []
    for k, (path, text) in enumerate(chat_targets):
        chatml.append(
            {
                "id": f"chatml_{k}",
                "speaker": mid.name,
                "start_index": 3,
                "messages": [
                    {"role": "system", "content": "Generate speech in the provided voice."},
                    {"role": "user", "content": SENTENCES[1]},
                    {"role": "assistant", "content": {"type": "audio", "audio_url": refs[1]}},
                    {"role": "user", "content": text},
                    {"role": "assistant", "content": [{"type": "audio", "url": path}]},
                ],
            }
        )
    _jsonl(out / "chatml.jsonl", chatml)

    # ljspeech/: a pipe-separated metadata.csv with wavs/<id>.wav, incl. a clipped clip
    lj = out / "ljspeech"
    (lj / "wavs").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(6):
        audio = synthesize(high, SENTENCES[(i + 6) % len(SENTENCES)], seed=900 + i)
        if i == 5:
            audio = np.clip(audio * 6.0, -1.0, 1.0)  # hard clipping
        write_wav(lj / "wavs" / f"LJ{i:03d}.wav", audio)
        sentence = SENTENCES[(i + 6) % len(SENTENCES)]
        rows.append(f"LJ{i:03d}|{sentence}|{sentence.lower()}")
    write_text(lj / "metadata.csv", "\n".join(rows) + "\n")

    # clips/: a folder of clips with same-named .txt transcripts (speaker = the subfolder), one without
    folder = out / "clips" / low.name
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(9, 12):
        text = SENTENCES[i % len(SENTENCES)]
        write_wav(folder / f"take_{i:02d}.wav", synthesize(low, text, seed=700 + i))
        write_text(folder / f"take_{i:02d}.txt", text + "\n")
    write_wav(folder / "take_99.wav", synthesize(low, SENTENCES[3], seed=799))  # its transcript was forgotten

    info = {
        "inputs": ["manifest.jsonl", "paired.json", "mixed.jsonl", "chatml.jsonl", "ljspeech", "clips"],
        "expected": {"total": 33, "converted": 29, "prompts": 1, "rejected": 3},
        "defects": {
            "missing_file": "manifest.jsonl line 10 (wavs/spk_low_99_missing.wav)",
            "malformed_json": "manifest.jsonl line 6",
            "silent_clip": "wavs/spk_low_silent.wav",
            "empty_transcript": "manifest.jsonl line 12",
            "clipped_clip": "ljspeech/wavs/LJ005.wav",
            "stereo_44k": "wavs/spk_mid_stereo44k.wav",
            "prompt_without_target": "paired.json record 4 (paired_prompt)",
            "clip_without_transcript": "clips/spk_low/take_99.wav",
        },
    }
    write_json(out / "demo.json", info)
    return info


def demo_inputs(output_dir: str | os.PathLike) -> list[str]:
    """Notebooks 01 and 02's default input: the demo dataset, written afresh under ``output_dir/demo_data``.

    Returns:
        The paths of its source files and folders, ready for ``input_data``.
    """
    target = Path(output_dir) / "demo_data"
    info = demo_data(target, overwrite=True)
    return [str(target / p) for p in info["inputs"]]  # type: ignore[union-attr]
