"""Routes, one module per area: ``auth`` (login, logout, language), ``pages`` (HTML),
``api`` (the JSON API under ``/api/v1``)."""
