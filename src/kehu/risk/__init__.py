"""Fraud and arrears: rules as validated data compiled to Ibis, usage anomalies (Isolation
Forest), payment risk and credit terms — one service for the CLI and the web app."""

from __future__ import annotations

from kehu.risk.anomaly import UsageAnomalyModel, UsageFeatureConfig, usage_features
from kehu.risk.compile import CompiledRule, Evidence, RiskContext, compile_rule
from kehu.risk.rules import RiskRule, RuleSet
from kehu.risk.service import anomalies, payments, run_rules

__all__ = ["CompiledRule", "Evidence", "RiskContext", "RiskRule", "RuleSet",
           "UsageAnomalyModel", "UsageFeatureConfig", "anomalies", "compile_rule", "payments",
           "run_rules", "usage_features"]
