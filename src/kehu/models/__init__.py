"""Statistical models fitted on per-customer frames the engine builds (one model per file)."""
