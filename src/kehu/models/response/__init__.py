"""Campaign response: who responds to a contact, and what a planned campaign can bring.

:func:`fit_response` trains a calibrated classifier on past *treatment* contacts (features
as of the day before each contact, label = a recorded response within the window) with a
time-based hold-out and registers it as kind ``response``; :func:`score_audience` scores a
planned audience with expected responses, revenue, margin, cost and ROI. See
``docs/response.md``.
"""

from __future__ import annotations

from kehu.models.response.audience import AudienceScore, score_audience
from kehu.models.response.frame import contact_frame, time_split
from kehu.models.response.service import KIND, ResponseFitReport, count_interval, fit_response

__all__ = ["KIND", "AudienceScore", "ResponseFitReport", "contact_frame", "count_interval",
           "fit_response", "score_audience", "time_split"]
