"""Interactive views for the notebooks: format picker, sample browser, issue table and fix actions.

Each class keeps plain Python state and has methods that its widgets' callbacks call, so tests
and papermill runs drive it without a browser: ``picker.choose(file, "manifest")`` does what
picking ``manifest`` in the dropdown does, and picking in the dropdown calls ``choose``.
``.widget`` is the ipywidgets container to display; ``static_html()`` is the stand-in for HTML
reports, where widgets do not render (tables, embedded images and ``<audio>`` players). One module
per view: ``format_picker`` and ``sample_browser`` (notebook 01), ``review`` (notebook 03: the
issue table and the fix actions), over ``view`` (the binding they share).
"""

from workbench import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    format_picker=("FormatPicker",),
    sample_browser=("SampleBrowser",),
    review=("IssueTable", "FixActions"),
)
