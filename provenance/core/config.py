"""Settings from the environment (prefix PROVENANCE_); embedded defaults need none."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DecodeLimits(BaseSettings):
    """Bounds on every decode, so hostile media costs a bounded amount of time and memory."""

    model_config = SettingsConfigDict(env_prefix="PROVENANCE_", extra="ignore")

    max_upload_bytes: int = 512 * 1024 * 1024
    max_pixels: int = 3840 * 2160
    max_duration_s: float = 15 * 60.0
    max_decode_seconds: float = 120.0
    max_streams: int = 16


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROVENANCE_", extra="ignore")

    data_dir: Path = Path("./var")
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str | None = None
    # "embedded" starts anvil under the data dir unless chain_rpc names an endpoint; "off" anchors nothing.
    chain_mode: Literal["embedded", "off"] = "embedded"
    chain_rpc: str | None = None
    chain_private_key: str | None = None
    chain_contract: str | None = None
    chain_confirmations: int = 0
    anchor_interval_s: float = 5.0
    anchor_max_leaves: int = 1000
    # Capture times may run ahead of the server clock by this much (device clocks drift).
    clock_skew_s: float = 300.0
    sample_fps: float = 4.0
    # Clips up to this long are verified within the request; longer ones become a job to poll.
    verify_sync_max_s: float = 30.0
    # Content Credentials: the operator's signing chain and key (PEM); by default a self-made root
    # and leaf under DATA_DIR/c2pa. Extra trust anchors are added to the root when reading.
    c2pa_cert: Path | None = None
    c2pa_key: Path | None = None
    c2pa_trust_anchors: Path | None = None
    # Continuous evaluation: seconds between scheduled runs (0: off) and metric floors, e.g.
    # PROVENANCE_EVAL_FLOORS='{"overall.tamper_detection_rate": 0.9, "paste_region.time_iou": 0.5}'.
    eval_interval_s: float = 0.0
    eval_floors: dict[str, float] = Field(default_factory=dict)
    # Seed a demo device, the sample clips and two copies to verify on a first start with an empty database.
    demo: bool = True
    limits: DecodeLimits = Field(default_factory=DecodeLimits)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'provenance.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
