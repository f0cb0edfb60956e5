"""Segments: specs people author (validated data), compiled to Ibis when evaluated."""

from __future__ import annotations

from kehu.segments.compile import Context, compile_segment
from kehu.segments.service import SegmentResult, evaluate, export, overlap
from kehu.segments.spec import SegmentSpec

__all__ = ["Context", "SegmentResult", "SegmentSpec", "compile_segment", "evaluate", "export",
           "overlap"]
