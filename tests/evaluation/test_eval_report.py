"""Tests for workbench.evaluation.eval_report: the best checkpoint, chosen on what listeners notice."""

from __future__ import annotations

from workbench.evaluation import eval_report as er
from workbench.evaluation.candidates import Candidate


def _row(name: str, sid: str, sim: float, mos: float, **extra) -> dict:
    row = {"candidate": name, "sample_id": sid, "status": "ok", "speaker_sim_target": sim, "dnsmos_ovrl": mos}
    row.update({"silence_ratio": 0.2, "duration_ratio": 1.1, "hit_max_new_tokens": False})
    row.update(extra)
    return row


def _summary(spec: dict[str, list[dict]]) -> list[dict]:
    """``{candidate: [row extras per prompt]}`` -> the summary of their rows (two prompts each)."""
    cands = [Candidate("base")] + [Candidate(n, step=int(n.split("-")[1])) for n in spec if n != "base"]
    rows = [
        _row(name, f"p{i}", **values) for name, prompts in spec.items() for i, values in enumerate(prompts)
    ]
    return er.summarize(rows, cands)


def test_clip_problem_names_silent_runaway_and_failed_clips():
    assert er.clip_problem(_row("a", "p", 0.8, 3.0)) is None
    assert er.clip_problem({"status": "failed"}) == "failed"
    assert er.clip_problem({"status": "no_audio"}) == "silent"
    assert er.clip_problem(_row("a", "p", 0.1, 1.5, silence_ratio=0.9)) == "silent"
    assert er.clip_problem(_row("a", "p", 0.8, 3.0, hit_max_new_tokens=True)) == "runaway"
    assert er.clip_problem(_row("a", "p", 0.8, 3.0, duration_ratio=2.5)) == "runaway"
    assert er.clip_problem(_row("a", "p", 0.8, 3.0, duration_ratio=float("nan"))) is None


def test_silent_and_runaway_checkpoints_never_win_and_dnsmos_breaks_a_similarity_tie():
    summary = _summary(
        {
            "base": [dict(sim=0.71, mos=3.3), dict(sim=0.71, mos=3.3)],
            "checkpoint-100": [dict(sim=0.82, mos=3.0), dict(sim=0.82, mos=3.0)],
            "checkpoint-200": [dict(sim=0.83, mos=3.4), dict(sim=0.83, mos=3.4)],  # ties 100 on similarity
            "checkpoint-300": [
                dict(sim=0.97, mos=4.0),
                dict(sim=0.9, mos=3.9, silence_ratio=0.95),  # high scores on what little it says
            ],  # falls silent
            "checkpoint-400": [dict(sim=0.96, mos=4.0), dict(sim=0.96, mos=4.0, hit_max_new_tokens=True)],
            "checkpoint-500": [dict(sim=0.95, mos=4.0), dict(sim=0.95, mos=4.0, duration_ratio=3.0)],
        }
    )
    by_name = {s["candidate"]: s for s in summary}
    assert (by_name["checkpoint-300"]["silent"], by_name["checkpoint-400"]["runaway"]) == (1, 1)
    assert (
        by_name["checkpoint-300"]["speaker_sim_target_mean"]
        > by_name["checkpoint-200"]["speaker_sim_target_mean"]
    )
    best = er.select_best(summary)
    assert best["candidate"] == "checkpoint-200" and best["metric"] == "dnsmos_ovrl" and best["beats_base"]
    assert er.best_sentence(best) == (
        "best: checkpoint-200: speaker similarity 0.83 vs base 0.71, DNSMOS 3.4 vs base 3.3, "
        "no silent or runaway clips, ruled out for more silent, runaway or failed clips: "
        "checkpoint-300, checkpoint-400, checkpoint-500, DNSMOS broke the tie"
    )
    # A clear lead on speaker similarity decides alone.
    clear = _summary(
        {
            "base": [dict(sim=0.71, mos=3.3)],
            "checkpoint-100": [dict(sim=0.90, mos=3.0)],
            "checkpoint-200": [dict(sim=0.80, mos=3.9)],
        }
    )
    best = er.select_best(clear)
    assert best["candidate"] == "checkpoint-100" and best["metric"] == "speaker_sim_target"
    assert (
        best["reason"]
        == "checkpoint-100: speaker similarity 0.9 vs base 0.71, DNSMOS 3 vs base 3.3, no silent or runaway clips"
    )


def test_when_every_checkpoint_falls_silent_the_fewest_silent_clips_win():
    summary = _summary(
        {
            "base": [dict(sim=0.7, mos=3.0), dict(sim=0.7, mos=3.0)],
            "checkpoint-1": [
                dict(sim=0.9, mos=3.0, silence_ratio=1.0),
                dict(sim=0.9, mos=3.0, silence_ratio=1.0),
            ],
            "checkpoint-2": [dict(sim=0.5, mos=2.0), dict(sim=0.5, mos=2.0, status="no_audio")],
        }
    )
    best = er.select_best(summary)
    assert best["candidate"] == "checkpoint-2" and best["silent"] == 1
    assert "1 silent clip of 2" in best["reason"] and "no adapter beats the base model" in best["reason"]


def test_an_explicit_metric_still_rules_out_silent_checkpoints():
    summary = _summary(
        {
            "base": [dict(sim=0.7, mos=3.0, mcd=9.0)],
            "checkpoint-1": [dict(sim=0.7, mos=3.0, mcd=8.0)],
            "checkpoint-2": [dict(sim=0.7, mos=3.0, mcd=5.0, silence_ratio=0.9)],
        }
    )
    best = er.select_best(summary, "mcd")
    assert best["candidate"] == "checkpoint-1" and best["metric"] == "mcd" and best["rule"] == "mcd"
    assert er.best_sentence(best) == (
        "best: checkpoint-1: MCD 8 dB vs base 9 dB, no silent or runaway clips, ruled out for more silent, "
        "runaway or failed clips: checkpoint-2, chosen by mel-cepstral distortion (lower is better)"
    )
    assert er.select_best(summary, "wer") is None
    assert er.best_sentence(None).startswith("best: none")
