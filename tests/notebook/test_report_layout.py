"""The HTML report's reading order: answer first, one collapsed parameter table, one collapsed log."""

from __future__ import annotations

import re

import nbformat
import pytest

from workbench.notebook.display import PARAMETERS_KEY, SUMMARY_KEY, Answer
from workbench.notebook.report_layout import ReportLayout, parameter_rows, report_exporter


def _out(kind: str, **fields):
    return nbformat.v4.new_output(kind, **fields)


def _html(markup: str, metadata: dict | None = None):
    return _out("display_data", data={"text/html": markup, "text/plain": "x"}, metadata=metadata or {})


@pytest.fixture
def executed():
    """A notebook as papermill leaves it: defaults, injected values, results among logs, the answer last."""
    nb = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "papermill": {"parameters": {"max_listen": 2, "output_dir": "/runs/x"}},
            "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
        }
    )
    code = nbformat.v4.new_code_cell
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 09 · A step\nWhat it does."),
        code(
            'output_dir = "runs/interactive"  # where results go\nmax_listen = 6  # clips embedded\nseed = 0',
            metadata={"tags": ["parameters"]},
        ),
        code(
            '# Parameters\noutput_dir = "/runs/x"\nmax_listen = 2\n',
            metadata={"tags": ["injected-parameters"]},
        ),
        code(
            "show_parameters(...)",
            outputs=[_html("<table>resolved</table>", {PARAMETERS_KEY: {"seed": 0, "extra": [1]}})],
        ),
        nbformat.v4.new_markdown_cell("## Work"),
        code(
            "work()",
            outputs=[
                _out("stream", name="stderr", text="INFO lib: loading\n"),
                _out("stream", name="stdout", text="42 things done\n"),
                _out("stream", name="stderr", text="x.py:3: FutureWarning: old\n  warnings.warn(\n"),
                _html("<table>the result</table>"),
                _out(
                    "display_data",
                    data={
                        "application/vnd.jupyter.widget-view+json": {"model_id": "m"},
                        "text/plain": "VBox()",
                    },
                ),
            ],
        ),
        nbformat.v4.new_markdown_cell("## Training"),
        code(
            "fit()",
            metadata={"tags": ["log"]},
            outputs=[_out("stream", name="stdout", text="step 5/10 | loss 1\n")],
        ),
        code("quiet()"),
        code(
            "show_answer(...)",
            metadata={"tags": ["answer"]},
            outputs=[_html(Answer("GO: 3 samples", "3 samples, GO").html(), {SUMMARY_KEY: "3 samples, GO"})],
        ),
    ]
    return nb


def test_layout_puts_the_answer_first_and_folds_parameters_and_logs(executed):
    nb, _ = ReportLayout().preprocess(executed, {})
    roles = [c.metadata.get("workbench_report") or (c.source.splitlines() or [""])[0] for c in nb.cells]
    assert roles == [
        "# 09 · A step",
        "show_answer(...)",
        "parameters",
        "## Work",
        "work()",
        "## Training",
        "log",
    ]
    assert "widgets" not in nb.metadata  # no widget views and no state: the static stand-ins show it
    work = nb.cells[4].outputs
    assert [o.output_type for o in work] == ["stream", "display_data"]  # stdout and the result stay, in order
    assert work[0].text == "42 things done\n"
    log = nb.cells[-1].outputs[0].data["text/html"]
    assert '<details class="wb-log"' in log and '<details class="wb-log" open' not in log
    assert "INFO lib: loading" in log and "FutureWarning: old" in log and "step 5/10" in log
    assert "4 lines, 1 warning" in log
    assert log.index("INFO lib") < log.index("step 5/10")  # in run order, under their sections
    params = nb.cells[2].outputs[0].data["text/html"]
    assert params.count("<details") == 1 and "Parameters</b>: 4, 2 set for this run" in params
    assert "resolved" not in params  # the displayed table is folded, not repeated


def test_parameter_rows_give_value_default_and_meaning(executed):
    rows = {r["name"]: r for r in parameter_rows(executed, {"seed": 0, "extra": [1]})}
    assert rows["output_dir"] == {
        "name": "output_dir",
        "value": "'/runs/x'",
        "default": '"runs/interactive"',
        "set": True,
        "help": "where results go",
    }
    assert rows["seed"]["default"] == "" and not rows["seed"]["set"]  # the default: not repeated
    assert rows["extra"]["value"] == "[1]"


def test_a_failed_run_opens_with_the_failure(executed):
    executed.cells.insert(
        0,
        nbformat.v4.new_markdown_cell(
            "An Exception was encountered", metadata={"tags": ["papermill-error-cell-tag"]}
        ),
    )
    executed.cells[6].outputs.append(_out("error", ename="ValueError", evalue="bad input", traceback=["tb"]))
    executed.cells[-1].outputs = []  # the answer cell never ran
    nb, _ = ReportLayout().preprocess(executed, {})
    assert nb.cells[0].source.startswith("# 09")
    banner = nb.cells[1].outputs[0].data["text/html"]
    assert "Failed: ValueError" in banner and "bad input" in banner and "“Work”" in banner
    assert any(
        o.output_type == "error" for c in nb.cells for o in c.get("outputs", [])
    )  # still shown in place


def test_exported_html_hides_code_and_keeps_the_notebook(executed, tmp_path):
    before = nbformat.writes(executed)
    body, _ = report_exporter().from_notebook_node(executed)
    assert nbformat.writes(executed) == before  # the exporter works on a copy
    assert "jp-CodeMirrorEditor jp-Editor" not in body and "show_answer(...)" not in body  # no code input
    assert 'data-mime-type="application/vnd.jupyter.stderr"' not in body
    text = re.sub(r"<[^>]+>", " ", body)
    assert (
        text.index("GO: 3 samples") < text.index("Parameters") < text.index("the result") < text.index("Log")
    )
