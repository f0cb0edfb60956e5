"""Promotion simulation (营销策略预测仿真): project offers — discounts, price plans, bundles —
on historical behaviour with stated elasticity assumptions, scenario against scenario and
against the baseline, by segment, before launch.

>>> from kehu.simulate import Simulation
>>> Simulation.parse({"name": "s", "segment_by": "region", "scenarios": [{"name": "a",
...     "offers": [{"kind": "bundle", "product_a": "A", "product_b": "B", "percent": 15,
...                 "attach_uplift": 0.1}]}]}).scenarios[0].offers[0].kind
'bundle'
"""

from __future__ import annotations

from kehu.simulate.engine import BASELINE, MEASURES, SimulationResult, simulate
from kehu.simulate.spec import (
    SEGMENT_DIMENSIONS,
    Audience,
    Bundle,
    Discount,
    PricePlan,
    Scenario,
    Simulation,
)

__all__ = ["BASELINE", "MEASURES", "SEGMENT_DIMENSIONS", "Audience", "Bundle", "Discount",
           "PricePlan", "Scenario", "Simulation", "SimulationResult", "simulate"]
