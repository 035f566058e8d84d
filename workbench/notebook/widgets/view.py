"""What the notebooks' views share: two-way binding of widgets to plain Python state, and small HTML helpers."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as W


def esc(value: Any) -> str:
    """``value`` as HTML text."""
    return html.escape(str(value))


def readable(markup: str) -> str:
    """Normal line spacing for multi-line HTML in an ``HTML`` widget (its default is one widget row per line)."""
    return f'<div style="line-height:1.4">{markup}</div>'


def scrolling(max_height: str | None = None) -> W.Layout:
    """A layout that scrolls content wider (or taller) than the output area instead of clipping it."""
    return W.Layout(width="100%", overflow="auto", max_height=max_height)


def shown(widget: W.DOMWidget, visible: bool) -> None:
    """Show or hide ``widget`` (hidden widgets take no room)."""
    widget.layout.display = "" if visible else "none"


class View:
    """Two-way binding: widget edits call the public methods, which update widgets without echo."""

    _syncing = False

    def _bind(self, box: W.ValueWidget, handler: Callable[[Any], Any]) -> None:
        box.observe(lambda ch: self._syncing or ch["new"] is None or handler(ch["new"]), names="value")

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False
