"""Typed workspace settings, read from ``kehu.toml`` and ``KEHU_*`` environment variables.

Nothing here runs at import time: :meth:`Settings.load` reads a workspace's file when asked.

>>> s = Settings()
>>> s.engine.name, s.store.url
('duckdb', 'sqlite:///app.db')
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from kehu.errors import KehuInputError

SETTINGS_FILE = "kehu.toml"


class CompanySection(BaseModel):
    name: str = Field("kehu", description="Name shown in reports and the web app.")
    locale: Literal["zh_CN", "en"] = Field("zh_CN", description="Default language of output.")
    currency: str = Field("CNY", description="ISO currency of all amounts (¥ for CNY).")
    timezone: str = Field("Asia/Shanghai", description="Business time zone of timestamps.")


class StoreSection(BaseModel):
    url: str = Field(
        "sqlite:///app.db",
        description="SQLAlchemy URL of the app store. A relative SQLite path is relative to "
        "the workspace. PostgreSQL: postgresql+psycopg://user@host/db",
    )


class WarehouseSection(BaseModel):
    path: str = Field("warehouse", description="Folder of the Delta tables (relative to the "
                      "workspace, or absolute).")


class EngineSection(BaseModel):
    name: Literal["duckdb", "spark"] = Field(
        "duckdb", description="Analytics engine: `duckdb` (in-process, the default) or "
        "`spark` (Apache Spark: local mode, or a cluster with `spark_master`; see "
        "docs/spark.md). The web app always serves with DuckDB.")
    threads: int | None = Field(None, ge=1, description="Threads for DuckDB (default: all).")
    memory_limit: str | None = Field(None, description="DuckDB memory limit, e.g. '4GB'.")
    spark_master: str | None = Field(
        None, description="Spark master URL, e.g. `local[4]`, `spark://host:7077`, `yarn`, "
        "`k8s://https://host:6443`. Empty: Spark's own configuration (`spark-defaults.conf`, "
        "`MASTER`), else `local[*]`. `kehu run --spark-master` overrides it.")
    spark_read: Literal["auto", "delta", "files"] = Field(
        "auto", description="How Spark reads warehouse tables: `delta` with the Delta Lake "
        "jars on Spark's class path (every Delta feature), `files` reads the Parquet files of "
        "the current table version (no deletion vectors or column mapping), `auto` uses "
        "`delta` when Spark has it.")
    spark_config: dict[str, str] = Field(
        {}, description="Spark configuration passed to the session kehu "
        "starts, `spark.*` keys as in `spark-defaults.conf`, e.g. `[engine.spark_config]` "
        "with `\"spark.executor.memory\" = \"8g\"`. Local mode defaults: "
        "`spark.driver.memory` 2g, ANSI mode off (DuckDB's null semantics).")

    @field_validator("spark_config")
    @classmethod
    def _spark_keys(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not k.startswith("spark.")]
        if bad:
            raise ValueError(f"Spark settings start with 'spark.'; got {', '.join(bad)}")
        return {k: str(v) for k, v in value.items()}


class IngestSection(BaseModel):
    batch_rows: int = Field(262_144, ge=1_000, description="Rows per streamed batch.")
    future_tolerance_days: int = Field(
        1, ge=0, description="Dates up to this many days after the import are not 'future'."
    )
    day_first: bool = Field(
        False, description="Read ambiguous dates like 03/04/2024 as day/month (else month/day)."
    )


class IdentitySection(BaseModel):
    follow_merges: bool = Field(
        True, description="After identity resolution (`kehu identity run`), analyses, "
        "pages and campaigns see each merged customer once: facts of every merged record "
        "under the customer's surviving id, the golden record's fields (docs/identity.md).")


class WebSection(BaseModel):
    secret_key: SecretStr = Field(
        SecretStr(""), description="Key that signs session cookies: at least 32 random "
        "characters (e.g. from `python -c \"import secrets; print(secrets.token_urlsafe(48))\"`"
        "), best set as KEHU_WEB__SECRET_KEY. Empty: the app refuses to start unless in demo "
        "mode, where a random key is made per run.")
    demo: bool = Field(False, description="Demo mode: allows an empty secret key and, on a "
                       "loopback host, cookies without the Secure flag (plain http).")
    session_max_age: int = Field(8 * 3600, ge=60, description="Seconds a login session lasts.")
    cookie_secure: bool = Field(True, description="Send cookies only over https (Secure flag). "
                                "Ignored in demo mode on a loopback host.")
    host: str = Field("127.0.0.1", description="Address `kehu serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `kehu serve` listens on.")
    keep_alive_seconds: int = Field(
        75, ge=1, description="Seconds `kehu serve` keeps an idle connection open. People "
        "pause between clicks; uvicorn's default of 5 s closes connections under clients that "
        "reuse them (75 s, as nginx).")
    login_max_failures: int = Field(5, ge=1, description="Failed logins per user name and "
                                    "client address before further tries are refused (429).")
    login_window_seconds: int = Field(900, ge=1, description="Window in which failed logins "
                                      "are counted, in seconds.")
    warm_on_start: bool = Field(True, description="Compute (or load) the dashboard in both "
                                "languages in the background when the app starts, so the first "
                                "visitor does not wait for it (minutes at millions of customers)."
                                )


class Settings(BaseSettings):
    """All settings of one workspace."""

    # KEHU_<SECTION>__<KEY>, e.g. KEHU_STORE__URL. (KEHU_WORKSPACE names the workspace
    # folder, which is why no section is called "workspace".)
    model_config = SettingsConfigDict(env_prefix="KEHU_", env_nested_delimiter="__",
                                      extra="forbid")

    company: CompanySection = Field(default_factory=CompanySection)
    store: StoreSection = Field(default_factory=StoreSection)
    warehouse: WarehouseSection = Field(default_factory=WarehouseSection)
    engine: EngineSection = Field(default_factory=EngineSection)
    ingest: IngestSection = Field(default_factory=IngestSection)
    identity: IdentitySection = Field(default_factory=IdentitySection)
    web: WebSection = Field(default_factory=WebSection)
    channels: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Settings of each channel adapter, one table per adapter, e.g. "
        "`[channels.smtp]` with `host`, `port`, `sender`, or `[channels.webhook]` with `url`; "
        "validated by the adapter when a campaign or an alert uses it (see docs/campaigns.md).")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment variables override the file, which is passed as init values
        return (env_settings, init_settings)

    @classmethod
    def load(cls, path: Path) -> Settings:
        """Read ``path`` (a ``kehu.toml``); environment variables ``KEHU_*`` override it."""
        try:
            data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise KehuInputError(f"{path}: not valid TOML ({exc}). Fix the file or run "
                                 "'kehu init' on a new folder.") from exc
        try:
            return cls(**data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
                for e in exc.errors()
            )
            raise KehuInputError(f"{path}: invalid settings: {problems}") from exc

    def to_toml_dict(self) -> dict[str, Any]:
        data = self.model_dump(by_alias=True, exclude_none=True)
        secret = self.web.secret_key.get_secret_value()
        if secret:
            data["web"]["secret_key"] = secret
        else:  # set it with KEHU_WEB__SECRET_KEY rather than in a file
            del data["web"]["secret_key"]
        return data
