"""How much memory a model needs, and which weight dtype fits this machine.

A full-size Higgs Audio v2 LM holds about 5.4 B parameters: 11 GB in bf16, 22 GB in float32. On a
machine without a GPU that decides whether a command can run at all, so every command that loads
a model asks here first and refuses with a clear message instead of being killed by the kernel's
out-of-memory handler half-way through.

Examples:
    >>> from workbench.models.memory import weight_bytes
    >>> weight_bytes("random-full", torch.bfloat16) / 1e9  # doctest: +SKIP
    10.8
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads on first use: the CLI imports this module for its error class
    import torch

log = logging.getLogger(__name__)

GIB = 2**30
# Room left for everything but the weights (codec, Python, allocator slack) when choosing a dtype.
HEADROOM_BYTES = 2 * GIB


class InsufficientMemoryError(RuntimeError):
    """This machine has too little memory for the command; the message says how much it needs."""


def parameter_count(model: str | os.PathLike) -> int | None:
    """Parameters of a model's LM, counted on the meta device (no weights are read).

    Args:
        model: ``"random-full"``, a model folder or a cached hub id.

    Returns:
        The count, or None when the folder's config cannot be read as its family's.
    """
    from workbench.models.families import RANDOM_FULL, detect_family

    try:
        if str(model) == RANDOM_FULL:
            from workbench.models.random_full import make_random_full_model

            meta_model, _ = make_random_full_model(device="meta")
            return sum(p.numel() for p in meta_model.parameters())
        return detect_family(model).parameter_count(model)
    except Exception as exc:  # an original layout or an unknown config: decided by loading it
        log.debug("could not count the parameters of %s on meta: %s", model, exc)
        return None


def weight_bytes(model: str | os.PathLike, dtype: torch.dtype) -> int | None:
    """Bytes the LM's weights take in ``dtype`` (None: unknown size)."""
    import torch

    count = parameter_count(model)
    return None if count is None else count * torch.empty((), dtype=dtype).element_size()


MEMORY_LIMIT_ENV = "WORKBENCH_MEMORY_LIMIT_GB"


def available_bytes() -> int:
    """Memory this process can still use: what the system reports as available, or the cgroup's
    limit minus its usage when that is lower (containers), or ``WORKBENCH_MEMORY_LIMIT_GB`` (GiB)
    when that is lower still (a share of a machine used by others)."""
    import psutil

    available = psutil.virtual_memory().available
    cap = os.environ.get(MEMORY_LIMIT_ENV)
    if cap:
        try:
            available = min(available, int(float(cap) * GIB))
        except ValueError:
            raise ValueError(f"{MEMORY_LIMIT_ENV}={cap!r}: expected a number of GiB, e.g. 16") from None
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            with open(limit_file) as fh:
                limit = fh.read().strip()
            with open(usage_file) as fh:
                usage = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            available = min(available, int(limit) - usage)
    return available


def cpu_weight_dtype(model: str | os.PathLike, preferred: torch.dtype | None = None) -> torch.dtype | None:
    """The dtype to load ``model`` in on the CPU for inference.

    float32 (``None``: the transformers default) when its weights fit in half the available memory,
    else bf16, with a log line; ``preferred`` wins when given.
    """
    import torch

    if preferred is not None:
        return preferred
    need = weight_bytes(model, torch.float32)
    if need is None or need + HEADROOM_BYTES <= available_bytes() / 2:
        return None
    log.info(
        "%s takes %.1f GiB in float32, more than half of the %.1f GiB available: loading it in bf16",
        model,
        need / GIB,
        available_bytes() / GIB,
    )
    return torch.bfloat16


def check_fits(need: int | None, what: str, hint: str) -> None:
    """Refuse work that needs more memory than this machine has available.

    Args:
        need: Bytes the work needs (None: unknown, nothing is checked).
        what: The work, for the message ("exporting random-full merged in bf16").
        hint: What to do instead.

    Raises:
        InsufficientMemoryError: ``need`` is over the available memory.
    """
    if need is None:
        return
    have = available_bytes()
    if need > have:
        raise InsufficientMemoryError(
            f"{what} needs about {need / GIB:.1f} GiB of memory; this machine has {have / GIB:.1f} GiB "
            f"available. Hint: {hint}"
        )
