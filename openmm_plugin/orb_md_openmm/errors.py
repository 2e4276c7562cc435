"""orb_md's one-line sentence out of an engine error, for code that drives an OpenMM Context.

When orb_md's TorchScript module raises inside OpenMM (NaN positions, a periodic module given no box), OpenMM
raises ``openmm.OpenMMException`` with the text of torch's ``JITException``: TorchScript's interpreter puts "The
following operation failed in the TorchScript interpreter." and both tracebacks in front of orb_md's sentence,
which comes last. Neither orb_md's module nor OpenMM's Python layer can change that text (openmm-torch passes
``what()``, not the original message). Wrapping the calls that compute forces in :func:`engine_errors` turns it
into :class:`OrbMDForceError`, whose message is orb_md's sentence alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import openmm
import torch

from orb_md.errors import OrbMDError

__all__ = ["OrbMDForceError", "engine_errors", "orb_md_sentence"]

# The line torch's interpreter appends: "builtins.ValueError: orb_md: ..." (a PythonForce gives the sentence bare).
_SENTENCE = re.compile(r"^(?:[\w.]+: )?(orb_md: .+)$", re.MULTILINE)


class OrbMDForceError(OrbMDError, openmm.OpenMMException):
    """orb_md's force stopped the engine; the message is orb_md's sentence, existing ``except OpenMMException`` still
    catch it."""


def orb_md_sentence(error: BaseException) -> str | None:
    """The last orb_md sentence in an engine error's message, or None if orb_md did not raise it."""
    sentences = _SENTENCE.findall(str(error))
    return sentences[-1] if sentences else None


@contextmanager
def engine_errors() -> Iterator[None]:
    """Re-raise an OpenMM (or TorchScript) error that orb_md's force caused as :class:`OrbMDForceError` (one line)."""
    try:
        yield
    except (openmm.OpenMMException, torch.jit.Error) as error:
        sentence = None if isinstance(error, OrbMDForceError) else orb_md_sentence(error)
        if sentence is None:
            raise
        raise OrbMDForceError(sentence) from None
