"""Differentiated treatment and account managers (MISSION C6, C7): the service-level table by
tier and the account managers' portfolios."""

from __future__ import annotations

from kehu.accounts.portfolio import portfolios
from kehu.accounts.service_levels import (
    CustomerServiceLevel,
    ServiceLevel,
    ServiceLevels,
    apply_to_offer,
    load_service_levels,
    save_service_levels,
    service_level_breaches,
    service_level_for,
)

__all__ = ["CustomerServiceLevel", "ServiceLevel", "ServiceLevels", "apply_to_offer",
           "load_service_levels", "portfolios", "save_service_levels", "service_level_breaches",
           "service_level_for"]
