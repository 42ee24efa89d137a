"""Synthetic source data with ground truth: a card issuer's departments over 18+ months.

Plain numpy and pyarrow, no Spark: generation is a single-process job whose cost is
serialising text files, and numpy's seeded Generators make it byte-reproducible.
"""

from cardlake.synth.generate import GenerateSummary, generate
from cardlake.synth.params import SynthParams
from cardlake.synth.sources import SOURCES, SourceSpec
from cardlake.synth.stream import StreamSummary, stream

__all__ = [
    "SOURCES",
    "GenerateSummary",
    "SourceSpec",
    "StreamSummary",
    "SynthParams",
    "generate",
    "stream",
]
