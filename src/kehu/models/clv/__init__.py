"""Customer lifetime value: BG/NBD (purchases, P(alive)), Gamma-Gamma (spend), discounted CLV."""

from __future__ import annotations

from kehu.models.clv.bgnbd import BetaGeo
from kehu.models.clv.gamma_gamma import GammaGamma
from kehu.models.clv.value import customer_lifetime_value

__all__ = ["BetaGeo", "GammaGamma", "customer_lifetime_value"]
