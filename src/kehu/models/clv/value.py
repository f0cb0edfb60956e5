"""Discounted customer lifetime value from BG/NBD purchases and Gamma-Gamma spend."""

from __future__ import annotations

import numpy as np

from kehu.models.clv.bgnbd import BetaGeo
from kehu.models.clv.gamma_gamma import GammaGamma


def customer_lifetime_value(purchases: BetaGeo, spend: GammaGamma, frequency: np.ndarray,
                            recency: np.ndarray, T: np.ndarray, monetary_value: np.ndarray,
                            months: int = 12, margin: float = 1.0,
                            annual_discount_rate: float = 0.10,
                            periods_per_month: float = 30.0) -> np.ndarray:
    """Σ over future months of expected purchases in that month × expected spend × margin,
    discounted monthly. ``periods_per_month`` converts months to the models' time unit
    (30 for days, 30/7 ≈ 4.345 for weeks)."""
    spend_i = spend.expected_spend(frequency, monetary_value)
    monthly = (1 + annual_discount_rate) ** (1 / 12) - 1
    total = np.zeros(len(np.atleast_1d(frequency)))
    prev = np.zeros_like(total)
    for i in range(1, months + 1):
        cum = purchases.expected_purchases(i * periods_per_month, frequency, recency, T)
        total += (cum - prev) * spend_i * margin / (1 + monthly) ** i
        prev = cum
    return total
