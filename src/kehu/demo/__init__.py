"""The demo company generator (``kehu generate``): realistic source-system exports of a
synthetic retail, telecom or bank customer base, with the ground truth behind them."""

from __future__ import annotations

from kehu.demo.generator import INDUSTRIES, GenerationSummary, generate

__all__ = ["INDUSTRIES", "GenerationSummary", "generate"]
