"""CLI commands, one module each, registered on the root Typer app."""

from __future__ import annotations

import importlib

import typer

#: command modules; each has ``register(app: typer.Typer) -> None``
MODULES = (
    "workspace",
    "ingest",
    "datasets",
    "demo",
    "quality",
    "customer",
    "clv",
    "value",
    "run",
    "segment",
    "cube",
    "churn",
    "crosssell",
    "risk",
    "response",
    "simulate",
    "campaign",
    "alerts",
    "kpi",
    "schemes",
    "identity",
    "web",
)


def register_all(app: typer.Typer) -> None:
    for name in MODULES:
        importlib.import_module(f"kehu.cli.commands.{name}").register(app)
