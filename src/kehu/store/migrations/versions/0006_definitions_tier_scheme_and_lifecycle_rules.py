"""definitions: the tier scheme and the lifecycle rules as kinds

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 17:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OLD = ("'segment', 'alert_rule', 'campaign', 'contact_policy', 'programme', "
       "'service_levels'")
NEW = OLD + ", 'tier_scheme', 'lifecycle_rules'"


def upgrade() -> None:
    with op.batch_alter_table("definitions", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_definitions_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_definitions_kind"), f"kind IN ({NEW})")


def downgrade() -> None:
    op.execute("DELETE FROM definitions WHERE kind IN ('tier_scheme', 'lifecycle_rules')")
    with op.batch_alter_table("definitions", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_definitions_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_definitions_kind"), f"kind IN ({OLD})")
