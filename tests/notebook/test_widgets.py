"""Tests for workbench.notebook.widgets: drive each widget class as a notebook user would, without a browser."""

from __future__ import annotations

import csv
import json

import pytest

from workbench.data.findings import finding
from workbench.data.fixes import FixRecipe
from workbench.data.formats.sharegpt import parse_map
from workbench.data.sample import Audio, Message, Sample
from workbench.notebook.widgets import FixActions, FormatPicker, IssueTable, SampleBrowser


def make_sample(
    sample_id: str, target: str | None, text: str, speaker: str, ref: str | None = None
) -> Sample:
    msgs = [Message("system", "Generate speech in the provided voice.")]
    if ref is not None:
        msgs += [Message("user", f"reference of {speaker}"), Message("assistant", Audio(ref))]
    msgs.append(Message("user", text))
    start = len(msgs) - 1
    if target is not None:
        msgs.append(Message("assistant", Audio(target)))
    return Sample(sample_id, tuple(msgs), start, speaker=speaker)


@pytest.fixture
def samples(make_wav):
    """a, b (speaker A, with a reference), c (speaker B, no reference), p (a prompt of speaker B)."""
    ref = str(make_wav("ref.wav", seconds=0.8, f0=120))
    return [
        make_sample("a", str(make_wav("a.wav", seconds=0.6, f0=150)), "the first sentence", "A", ref),
        make_sample("b", str(make_wav("b.wav", seconds=0.9, f0=220, sr=16_000)), "another line", "A", ref),
        make_sample("c", str(make_wav("c.wav", seconds=0.7, f0=180)), "speaker bee talks", "B"),
        make_sample("p", None, "a prompt only", "B", ref),
    ]


@pytest.fixture
def sources(tmp_path, make_wav):
    """A NeMo-style manifest and a ShareGPT file, both pointing at real audio."""
    for name in ("u1", "u2", "u3"):
        make_wav(f"src/{name}.wav", seconds=0.5)
    manifest = tmp_path / "src" / "manifest.jsonl"
    rows = [
        {"audio_filepath": f"{n}.wav", "text": f"text {n}", "speaker": "s1", "id": n}
        for n in ("u1", "u2", "u3")
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sharegpt = tmp_path / "src" / "chat.jsonl"
    chat = {"conversations": [{"from": "human", "value": "hello there"}, {"from": "gpt", "value": "general"}]}
    sharegpt.write_text(json.dumps({**chat, "id": "g1", "audio": "u1.wav"}) + "\n")
    return str(manifest), str(sharegpt)


# --- FormatPicker --------------------------------------------------------------------------------


def test_format_picker_preview_follows_the_choice(sources):
    manifest, sharegpt = sources
    picker = FormatPicker([manifest, sharegpt], n_preview=2)
    assert picker.choices == {manifest: "auto", sharegpt: "auto"}
    assert [o.kind for o in picker.preview_outcomes(manifest)] == ["trainable", "trainable"]
    before = picker.preview_html(manifest)
    assert "canonical sample" in before and "text u1" in before
    assert picker.options()["format"] == "auto"

    picker.choose(manifest, "sharegpt")  # the method updates the state, the dropdown and the preview
    assert picker.choices[manifest] == "sharegpt"
    assert picker.dropdowns[manifest].value == "sharegpt"
    assert [o.kind for o in picker.preview_outcomes(manifest)] == ["rejected", "rejected"]
    after = picker.previews[manifest].value
    assert after != before and "BAD_FIELD" in after and "does not fit format" in after
    assert picker.options()["format"] == [(manifest, "sharegpt"), (sharegpt, "auto")]

    picker.dropdowns[manifest].value = "manifest"  # a dropdown change calls choose()
    assert picker.choices[manifest] == "manifest"
    assert (
        "trainable" in picker.previews[manifest].value and "BAD_FIELD" not in picker.previews[manifest].value
    )

    html = picker.static_html()
    assert "manifest.jsonl" in html and "chosen format: manifest" in html and "detected manifest: 3" in html
    with pytest.raises(ValueError, match="unknown"):
        picker.choose(manifest, "nonsense")


def test_format_picker_sharegpt_mapping(sources):
    manifest, sharegpt = sources
    assert FormatPicker(manifest).map_box.layout.display == "none"  # no ShareGPT data, no mapping shown

    picker = FormatPicker(sharegpt)
    assert picker.map_box.layout.display != "none"
    assert picker.preview_outcomes(sharegpt)[0].kind == "prompt"  # default: the audio is the reference

    picker.set_map("audio0", "target_audio")
    assert picker.map_dropdowns["audio0"].value == "target_audio"
    assert picker.preview_outcomes(sharegpt)[0].kind == "trainable"
    assert picker.sharegpt_map["audio1"] == "ignore"  # the newest choice wins over the default
    options = picker.options()
    assert options["format"] == "auto" and options["sharegpt_map"]["audio0"] == "target_audio"
    assert parse_map(options["sharegpt_map"]) == picker.sharegpt_map
    assert "target_audio" in picker.static_html()

    picker.map_dropdowns["audio0"].value = "reference_audio"  # a dropdown change calls set_map()
    assert picker.sharegpt_map["audio0"] == "reference_audio"
    assert picker.preview_outcomes(sharegpt)[0].kind == "prompt"
    picker.set_map("human", "target_text")  # the gpt turn, which held target_text, is now ignored
    assert picker.map_dropdowns["gpt"].value == "ignore"
    assert picker.preview_outcomes(sharegpt)[0].kind == "rejected"
    assert "reference audio has no transcript" in picker.previews[sharegpt].value
    picker.set_map("audio0", "target_audio")
    assert picker.preview_outcomes(sharegpt)[0].sample.target_text() == "hello there"
    with pytest.raises(ValueError, match="unknown role"):
        picker.set_map("gpt", "narrator")


# --- SampleBrowser -------------------------------------------------------------------------------


def test_sample_browser_selection_changes_audio_and_texts(samples):
    browser = SampleBrowser(samples, max_seconds=5)
    assert browser.selected == "a"
    first = bytes(browser.players["target"].value)
    assert first[:4] == b"RIFF" and "the first sentence" in browser.texts.value
    assert bytes(browser.players["reference"].value)[:4] == b"RIFF"
    assert bytes(browser.images["target"].value)[:4] == b"\x89PNG"

    browser.select("b")
    assert browser.select_box.value == "b"
    assert bytes(browser.players["target"].value) not in (b"", first)
    assert "another line" in browser.texts.value and "the first sentence" not in browser.texts.value

    browser.select_box.value = "c"  # picking in the list calls select()
    assert browser.selected == "c" and "speaker bee talks" in browser.texts.value
    assert bytes(browser.players["reference"].value) == b""  # c has no reference
    assert "no reference audio" in browser.notes["reference"].value

    browser.select("p")  # a prompt: reference only
    assert (
        bytes(browser.players["target"].value) == b"" and "no target audio" in browser.notes["target"].value
    )
    with pytest.raises(KeyError):
        browser.select("zzz")


def test_sample_browser_filter_and_static_html(samples):
    browser = SampleBrowser(samples, max_seconds=5)
    browser.filter_box.value = "bee"  # typing in the filter box calls set_filter()
    assert browser.visible_ids == ["c"] and list(browser.select_box.options) == ["c"]
    assert browser.selected == "c"
    browser.set_filter("nothing matches this")
    assert browser.selected is None and list(browser.select_box.options) == []
    browser.select("a")  # selecting a hidden sample clears the filter
    assert browser.filter_text == "" and len(browser.select_box.options) == 4

    html = browser.static_html()
    assert html.count("<audio") == 2 and html.count("<img") == 2
    assert "data:audio/wav;base64," in html and "the first sentence" in html
    assert "c.wav" in browser.static_html(["c"])


def test_sample_browser_lists_at_most_max_options_and_says_how_many_match(samples, monkeypatch):
    """200,000 ids in a <select> stall the browser: list a few hundred, say how many, filter for the rest."""
    base = samples[0]
    many = [Sample(f"utt{i:05d}", base.messages, base.start_index, f"spk{i % 7}") for i in range(1_200)]
    monkeypatch.setattr(SampleBrowser, "MAX_OPTIONS", 500)
    browser = SampleBrowser(many)
    assert len(browser.select_box.options) == 500 and browser.selected == "utt00000"
    assert "1,200 samples; 500 listed, type to filter the other 700" in browser.count.value
    browser.select("utt01150")  # beyond the listed ones: listed too, and selected
    assert browser.select_box.value == "utt01150" and "utt01150" in browser.select_box.options
    browser.filter_box.value = "utt011"
    assert list(browser.select_box.options) == [f"utt{i:05d}" for i in range(1100, 1200)]
    assert browser.count.value == "<small>100 samples</small>" and browser.selected == "utt01150"


# --- IssueTable ----------------------------------------------------------------------------------


@pytest.fixture
def findings():
    return [
        finding("LONG_SILENCE", "2.0 s of leading silence", sample_id="a"),
        finding("LONG_SILENCE", "1.5 s of trailing silence", sample_id="c"),
        finding("CLIPPING", "clipped peaks", sample_id="b"),
        finding("EMPTY_TEXT", "no transcript", sample_id="c"),
        finding("AUDIO_NOT_FOUND", "missing file", sample_id="b"),
    ]


def test_issue_table_filters_and_exports(findings, samples, tmp_path):
    table = IssueTable(findings, samples)
    assert len(table.filtered) == 5 and "5 of 5 findings" in table.count.value

    table.set_filter(code="LONG_SILENCE")
    assert [f.sample_id for f in table.filtered] == ["a", "c"]
    assert table.dropdowns["code"].value == "LONG_SILENCE" and "2 of 5 findings" in table.count.value
    assert "clipped peaks" not in table.table.value and "trailing silence" in table.table.value

    table.set_filter(speaker="B")
    assert table.sample_ids == ["c"] and len(table.filtered) == 2
    assert table.dropdowns["code"].value == "(all)"

    table.dropdowns["speaker"].value = "(all)"  # dropdown changes call set_filter()
    table.dropdowns["severity"].value = "warning"
    assert {f.code for f in table.filtered} == {"LONG_SILENCE", "CLIPPING"}
    assert table.filters == {"code": None, "severity": "warning", "speaker": None}

    path = table.export_csv(tmp_path / "out" / "flagged.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and {r["speaker"] for r in rows} == {"A", "B"}

    table.csv_box.value = str(tmp_path / "clicked.csv")
    table.export_button.click()
    assert (tmp_path / "clicked.csv").exists() and "wrote 3 rows" in table.export_status.value
    assert "3 of 5 findings" in table.static_html() and "<table" in table.static_html()
    with pytest.raises(ValueError, match="not among the findings"):
        table.set_filter(code="NO_SUCH_CODE")


def test_issue_table_takes_a_validation_report(findings):
    class Report:  # the shape of workbench.data.validate.ValidationReport
        pass

    report = Report()
    report.findings = findings
    table = IssueTable(report)
    table.set_filter(severity="error")
    assert {f.code for f in table.filtered} == {"EMPTY_TEXT", "AUDIO_NOT_FOUND"}


# --- FixActions ----------------------------------------------------------------------------------


def test_fix_actions_buttons_grow_the_recipe(findings, samples, tmp_path):
    table = IssueTable(findings, samples)
    recipe = FixRecipe()
    actions = FixActions(recipe, samples, issue_table=table, output_dir=tmp_path / "run")
    assert len(recipe) == 0

    table.set_filter(code="LONG_SILENCE")  # buttons act on the filtered samples by default
    assert "2 samples" in actions.targets.value
    actions.buttons["trim silence"].click()
    assert len(recipe) == 1 and recipe.ops[0].op == "trim_silence" and recipe.ops[0].args["ids"] == ["a", "c"]

    actions.buttons["drop samples"].click()
    assert recipe.ops[-1].args == {"ids": ["a", "c"], "reason": "flagged LONG_SILENCE"}

    actions.ids_box.value = ("b",)  # picked samples win over the table's filter
    actions.buttons["move to prompts"].click()
    actions.speaker_box.value = "C"
    actions.buttons["set speaker"].click()
    assert [op.args["ids"] for op in recipe.ops[-2:]] == [["b"], ["b"]] and recipe.ops[-1].args[
        "speaker"
    ] == "C"

    actions.merge_box.value = ("A", "B")
    actions.into_box.value = "AB"
    actions.buttons["merge speakers"].click()
    actions.old_box.value, actions.new_box.value = "/mnt/old/", "/data/"
    actions.buttons["remap prefix"].click()
    assert [op.op for op in recipe.ops] == [
        "trim_silence",
        "drop_samples",
        "move_to_prompts",
        "set_speaker",
        "merge_speakers",
        "remap_prefix",
    ]
    assert "merge_speakers" in actions.view.value and "<pre>" in actions.view.value
    assert "6 steps" in actions.static_html()

    actions.buttons["save recipe"].click()
    path = tmp_path / "run" / "fixes.yaml"
    assert "saved 6 steps" in actions.status.value and actions.save() == path
    assert [op.to_dict() for op in FixRecipe.load(path).ops] == [op.to_dict() for op in recipe.ops]


def test_fix_actions_reports_bad_input_without_adding(samples):
    recipe = FixRecipe()
    actions = FixActions(recipe, samples)
    actions.buttons["drop samples"].click()  # nothing picked and no issue table
    assert len(recipe) == 0 and "non-empty list of sample ids" in actions.status.value
    actions.old_box.value = ""
    actions.buttons["remap prefix"].click()
    assert len(recipe) == 0
    actions.drop(["a"], reason="noisy")  # the methods the buttons call work on their own too
    actions.merge_speakers(["A", "B"], into="A")
    assert len(recipe) == 2 and "noisy" in actions.view.value
    with pytest.raises(ValueError, match="needs a path"):
        actions.save()
    actions.buttons["save recipe"].click()
    assert "needs a path" in actions.status.value


def test_listener_sample_html_escapes_and_caps_clips(make_wav):
    from workbench.notebook.display import Listener

    ref, target = make_wav("ref.wav"), make_wav("target.wav", seconds=3.0)
    sample = Sample(
        "a<b>",
        (Message("user", "ref"), Message("assistant", Audio(str(ref))), Message("user", "1 < 2 & 3"),
         Message("assistant", Audio(str(target)))),
        2,
    )  # fmt: skip
    listener = Listener(max_listen=2, max_seconds=2.0)
    page = listener.sample_html(sample, note="CODE")
    assert "<b>a&lt;b&gt;</b> [CODE]: 1 &lt; 2 &amp; 3" in page and "(None)" not in page
    assert page.count("<audio") == 2 and "target (first 2 s)" in page and listener.embedded == 2
    more = listener.sample_html(Sample("s2", sample.messages, 2, "spk"), references=False)
    assert "<b>s2</b> (spk):" in more and "<audio" not in more and "max_listen=2 reached" in more
