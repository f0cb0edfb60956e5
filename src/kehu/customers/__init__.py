"""The customer list (issue 6): search, filter, sort and page through customers — only those
the asker may see — over a per-run customer index kept warm in the process.

>>> from kehu.customers import CustomerQuery, Scope
>>> CustomerQuery(q="138", page_size=20).page, Scope().employee_id is None
(1, True)
"""

from __future__ import annotations

from kehu.customers.search import (
    CustomerPage,
    CustomerQuery,
    IndexInfo,
    Scope,
    account_managers,
    ensure_index,
    get_visible,
    invalidate,
    manager_names,
    managers_today,
    mask_phone,
    phone_digits,
    search,
)

__all__ = ["CustomerPage", "CustomerQuery", "IndexInfo", "Scope", "account_managers",
           "ensure_index", "get_visible", "invalidate", "manager_names", "managers_today",
           "mask_phone", "phone_digits", "search"]
