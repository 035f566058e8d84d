"""`workbench bench data`: every stage runs in its own process and reports throughput and memory."""

from __future__ import annotations

from workbench.bench.data import bench_data


def test_bench_data_measures_every_stage_and_keeps_a_given_workdir(tmp_path):
    result = bench_data(n=400, pool=20, workdir=tmp_path / "work")
    assert set(result.stages) == {"convert", "validate (cold)", "validate (warm)"}
    for stage in result.stages.values():
        assert stage["records"] == 400 and stage["records_per_s"] > 0 and stage["peak_rss_mb"] > 0
    text = result.format_text()
    assert "convert vs target 20,000/s" in text and "probe cache speed-up" in text
    assert (tmp_path / "work" / "manifest_400.jsonl").exists()


def test_bench_data_cleans_up_its_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    bench_data(n=50, pool=5)
    assert not any(p.name.startswith("workbench-bench-") for p in tmp_path.iterdir())
