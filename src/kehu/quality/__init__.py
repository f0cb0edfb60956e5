"""Data quality (MISSION D4): completeness, validity, duplicates, orphans, outliers, coverage."""

from __future__ import annotations

from kehu.quality.report import EntityQuality, QualityReport, build_report, score

__all__ = ["EntityQuality", "QualityReport", "build_report", "score"]
