"""Settings, read once from the environment (see README: Configuration)."""

import os
from dataclasses import dataclass


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite://agentplane.db"
    redis_url: str | None = None
    admin_token: str | None = None
    env: str = "development"
    scripted_delay_ms: int = 20
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: str | None = None
    task_timeout_s: int = 600
    worker_concurrency: int = 8
    rate_limit_per_min: int = 120
    # Fernet key (urlsafe base64 of 32 bytes) for secrets at rest, e.g. provider API keys.
    secret_key: str | None = None
    session_ttl_h: int = 24 * 7
    # This server's URL as browsers see it; unset = taken from each request.
    public_url: str | None = None
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    # Role and tenant given to a user's first OIDC login; unset = no role until assigned.
    oidc_default_role: str | None = None
    oidc_default_tenant: str | None = None
    maintenance_interval_s: int = 3600
    # A worker renews its lease every third of this; a task whose lease lapses is taken over.
    lease_ttl_s: float = 10.0
    # Lease expiries a task survives before it fails (a worker crash each time).
    max_attempts: int = 3

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get("AGENTPLANE_ENV", "development")
        if env not in ("development", "production"):
            raise SystemExit(f"AGENTPLANE_ENV must be development or production, not {env!r}")
        return cls(
            database_url=os.environ.get("AGENTPLANE_DATABASE_URL") or cls.database_url,
            redis_url=os.environ.get("AGENTPLANE_REDIS_URL") or None,
            admin_token=os.environ.get("AGENTPLANE_ADMIN_TOKEN") or None,
            env=env,
            scripted_delay_ms=_int("AGENTPLANE_SCRIPTED_DELAY_MS", cls.scripted_delay_ms),
            openai_base_url=os.environ.get("AGENTPLANE_OPENAI_BASE_URL") or cls.openai_base_url,
            openai_api_key=os.environ.get("AGENTPLANE_OPENAI_API_KEY") or None,
            task_timeout_s=_int("AGENTPLANE_TASK_TIMEOUT_S", cls.task_timeout_s),
            worker_concurrency=_int("AGENTPLANE_WORKER_CONCURRENCY", cls.worker_concurrency),
            rate_limit_per_min=_int("AGENTPLANE_RATE_LIMIT_PER_MIN", cls.rate_limit_per_min),
            secret_key=os.environ.get("AGENTPLANE_SECRET_KEY") or None,
            session_ttl_h=_int("AGENTPLANE_SESSION_TTL_H", cls.session_ttl_h),
            public_url=(os.environ.get("AGENTPLANE_PUBLIC_URL") or "").rstrip("/") or None,
            oidc_issuer=os.environ.get("AGENTPLANE_OIDC_ISSUER") or None,
            oidc_client_id=os.environ.get("AGENTPLANE_OIDC_CLIENT_ID") or None,
            oidc_client_secret=os.environ.get("AGENTPLANE_OIDC_CLIENT_SECRET") or None,
            oidc_default_role=os.environ.get("AGENTPLANE_OIDC_DEFAULT_ROLE") or None,
            oidc_default_tenant=os.environ.get("AGENTPLANE_OIDC_DEFAULT_TENANT") or None,
            maintenance_interval_s=_int(
                "AGENTPLANE_MAINTENANCE_INTERVAL_S", cls.maintenance_interval_s
            ),
            lease_ttl_s=float(os.environ.get("AGENTPLANE_LEASE_TTL_S") or cls.lease_ttl_s),
            max_attempts=_int("AGENTPLANE_MAX_ATTEMPTS", cls.max_attempts),
        )
