"""The Higgs TTS 3 audio sampler: one row of N codes per step, with the delay ramp and the stop rule.

The same state machine as SGLang-Omni's ``sampler.step`` and mlx-audio's ``higgs_audio_v3``
(written anew here). After the prompt (ending with ``<|audio|>``), each step turns the logits of
the last hidden state, ``(N, V)``, into one row of codes:

1. each codebook is sampled on its own: greedy when ``temperature <= 1e-5`` or sampling is off,
   else temperature, then top-k, then top-p (the most likely code always survives top-p);
2. while fewer than N rows have been sampled (``delay_count < N``), the codebooks that have not
   started yet (index ``> delay_count``) are forced to BOC, then ``delay_count`` grows by one;
3. otherwise, when an EOC countdown runs, it drops by one and generation ends when it reaches 0;
4. otherwise, when codebook 0 sampled EOC, a countdown of ``N - 2`` starts (with ``N <= 2``,
   generation ends at once).

Every sampled row is output, the last one included. A clip of T frames is therefore T + N - 1 rows:
codebook 0 sees EOC on row T, and the N - 2 rows after it finish the other codebooks' delay.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GREEDY_TEMPERATURE = 1e-5


@dataclass
class SamplerState:
    """Where one generation stands.

    Attributes:
        num_codebooks: N.
        delay_count: Rows sampled during the ramp-in (at most N).
        eoc_countdown: Rows left after codebook 0's EOC, or None before it.
        done: Generation has ended (the row that ended it is part of the output).
    """

    num_codebooks: int
    delay_count: int = 0
    eoc_countdown: int | None = None
    done: bool = False


def sample_codes(
    logits: torch.Tensor,
    do_sample: bool = False,
    temperature: float | None = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """One code per codebook from logits ``(N, V)``, each codebook independently.

    Args:
        logits: Float logits ``(N, V)``.
        do_sample: Sample (else greedy).
        temperature: Divides the logits; ``<= 1e-5`` (or None with ``do_sample``: 1.0) is greedy.
        top_k: Keep the k most likely codes (None or <= 0: all).
        top_p: Keep the smallest set whose probability reaches ``top_p`` (None or >= 1: all).

    Returns:
        LongTensor ``(N,)``. Sampling draws from torch's global RNG (the caller seeds it).
    """
    temperature = 1.0 if temperature is None else float(temperature)
    if not do_sample or temperature <= GREEDY_TEMPERATURE:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k > 0:
        kth = logits.topk(min(int(top_k), logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative > top_p
        remove[:, 1:] = remove[:, :-1].clone()  # shift: the code that crosses top_p stays
        remove[:, 0] = False
        logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return logits.softmax(dim=-1).multinomial(num_samples=1).squeeze(-1)


def constrain_row(codes: torch.Tensor, state: SamplerState, boc_id: int, eoc_id: int) -> torch.Tensor:
    """Apply the ramp-in and the stop rule to one sampled row; updates ``state`` in place.

    Args:
        codes: LongTensor ``(N,)`` as sampled.
        state: The generation's state (``state.done`` must be False).
        boc_id: BOC (forced onto codebooks not started yet).
        eoc_id: EOC (codebook 0's EOC starts the countdown).

    Returns:
        The row to output, LongTensor ``(N,)``.
    """
    if state.done:
        raise RuntimeError("the generation has already ended")
    n = state.num_codebooks
    codes = codes.clone()
    if state.delay_count < n:
        codes[state.delay_count + 1 :] = boc_id
        state.delay_count += 1
    elif state.eoc_countdown is not None:
        state.eoc_countdown -= 1
        state.done = state.eoc_countdown <= 0
    elif int(codes[0]) == eoc_id:
        if n <= 2:
            state.done = True
        else:
            state.eoc_countdown = n - 2
    return codes


def sampler_step(
    logits: torch.Tensor,
    state: SamplerState,
    boc_id: int,
    eoc_id: int,
    do_sample: bool = False,
    temperature: float | None = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """:func:`sample_codes` then :func:`constrain_row`: the next output row ``(N,)``."""
    codes = sample_codes(logits, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p)
    return constrain_row(codes, state, boc_id, eoc_id)
