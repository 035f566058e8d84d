"""Notebook: the thin faces over the stages, interactive and headless.

Takes in what the data, training and evaluation stages give out. Gives out what a person sees in
notebooks 00-05: widgets with a static stand-in for the HTML report (``widgets``,
``prepare_view``), HTML tables, players and plots (``display``, ``plots``, ``eval_view``), the
notebooks' few multi-step helpers (``steps``); and the runs themselves: a notebook executed by
papermill into an executed ``.ipynb`` and a stand-alone HTML report that opens with the step's
answer (``report``, ``report_layout``, ``answers``) and a run folder's index, and the notebook each
rank of an ``accelerate launch`` runs (``ranks``, ``rank_entry``).
"""

from workbench import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    report=("NotebookRun", "run_notebook", "write_index"),
    ranks=("run_evaluation_notebook", "launched_run"),
)
