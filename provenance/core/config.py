"""Settings from the environment (prefix PROVENANCE_); embedded defaults need none."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The segment comparer setting (`PROVENANCE_COMPARER`), read by `provenance.verify.policy`.
ComparerMode = Literal["auto", "learned", "baseline"]


class DecodeLimits(BaseSettings):
    """Bounds on every decode, so hostile media costs a bounded amount of time and memory."""

    model_config = SettingsConfigDict(env_prefix="PROVENANCE_", extra="ignore")

    max_upload_bytes: int = 512 * 1024 * 1024
    max_pixels: int = 3840 * 2160
    max_duration_s: float = 15 * 60.0
    max_decode_seconds: float = 120.0
    max_streams: int = 16
    # Frames decoded from one file (15 min at 120 fps); an animated GIF holds far fewer, and its
    # frames are counted from its blocks before decoding; MP4 sample tables are bounded per track
    # before FFmpeg sizes its index from them (15 min of 48 kHz AAC is about 42,000 samples).
    max_frames: int = 108_000
    max_animation_frames: int = 3_000
    max_track_samples: int = 250_000
    # The sound track: more channels than 7.1 twice over, or a rate outside what any recorder
    # writes, is hostile; its length is bounded by `max_duration_s` like the picture's.
    max_audio_channels: int = 16
    min_audio_rate: int = 4_000
    max_audio_rate: int = 192_000


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
    # /health says `degraded` when a leaf has waited for anchoring longer than this (0: three intervals).
    anchor_lag_max_s: float = 0.0
    # Start-up in any role waits this long for an unreachable database before it exits non-zero.
    database_wait_s: float = 180.0
    # Capture times may run ahead of the server clock by this much (device clocks drift).
    clock_skew_s: float = 300.0
    sample_fps: float = 4.0
    # Segment comparer for version 2 registrations: "auto" uses the learned (triplet) comparer only
    # when its shipped weights meet the held-out targets, else the PDQ/grid baseline; "learned" or
    # "baseline" forces one. Version 1 registrations always use the baseline.
    comparer: ComparerMode = "auto"
    # When the plain search finds nothing strong, look for the original of a reframed or mirrored
    # copy (vertical crops, pictures inside fills or players, small rotations, mirrors):
    # provenance.verify.reframe. Off: such copies stay `unknown` (what bench/reframe.py compares).
    reframes: bool = True
    # Clips up to this long are verified within the request; longer ones become a job to poll.
    verify_sync_max_s: float = 30.0
    # At most this many of those run within their requests at once, on threads of their own (reads
    # and /health keep the server's thread pool); beyond it a short clip is queued too (202 + Location).
    verify_sync_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    # /health says `degraded` when the data directory (or its media, tmp or reports mount) has less
    # free space than this; a full disk refuses writes with 507 `storage_full`.
    min_free_disk_bytes: int = 256 * 1024 * 1024
    # Content Credentials: the operator's signing chain and key (PEM); by default a self-made root
    # and leaf under DATA_DIR/c2pa. Extra trust anchors are added to the root when reading.
    c2pa_cert: Path | None = None
    c2pa_key: Path | None = None
    c2pa_trust_anchors: Path | None = None
    # Continuous evaluation: seconds between scheduled runs (0: off) and metric floors, e.g.
    # PROVENANCE_EVAL_FLOORS='{"overall.tamper_detection_rate": 0.9, "paste_region.time_iou": 0.5}'.
    eval_interval_s: float = 0.0
    eval_floors: dict[str, float] = Field(default_factory=dict)
    # Process role: "all" is the embedded single process (API, batcher, jobs in threads); beyond one
    # machine "api" serves HTTP and defers jobs, "worker" runs the batcher and the queued jobs
    # (both need PostgreSQL and PROVENANCE_CHAIN_RPC).
    role: Literal["all", "api", "worker"] = "all"
    worker_concurrency: int = 2
    # Workers beat every `worker_heartbeat_s`; one silent for `worker_stalled_s` is dead and its jobs retried.
    worker_heartbeat_s: float = 5.0
    worker_stalled_s: float = 20.0
    # How often api and worker processes pick up registrations made through other processes.
    matcher_poll_s: float = 1.0
    # Rate limits per API key, by scope, in the `limits` notation ("20/second;600/minute"), e.g.
    # PROVENANCE_RATE_LIMITS='{"camera": "5/second", "newsroom": "2/second"}'; scopes not named get
    # the default. Storage: "auto" (PostgreSQL: the database, shared by all API processes; SQLite:
    # memory), "memory", "database", or a `limits` storage URI such as "redis://127.0.0.1:6379".
    rate_limits: dict[str, str] = Field(default_factory=dict)
    rate_limit_default: str = "100/second"
    rate_limit_storage: str = "auto"
    # POST /v1/registrations/batch: at most this many signed manifests per request (more: 413), and
    # a body of at most this many bytes per allowed item (a version 2 manifest is ~30 kB).
    registration_batch_max: int = 100
    registration_batch_item_bytes: int = 256 * 1024
    # Any other request body (JSON of the admin and lookup routes, the sign-in form).
    max_json_bytes: int = 64 * 1024
    # The HTTP server: request line plus headers at most this many bytes (431 beyond), headers
    # complete within `http_header_timeout_s` of the first byte, and a body never silent for
    # longer than `http_body_idle_s`: a slow client cannot hold a connection open for free.
    http_max_header_bytes: int = 64 * 1024
    http_header_timeout_s: float = 15.0
    http_body_idle_s: float = 60.0
    # Secrets may come from files instead of the environment (PROVENANCE_CHAIN_PRIVATE_KEY_FILE, ...);
    # every key file the service reads must not be readable by group or others.
    chain_private_key_file: Path | None = None
    database_url_file: Path | None = None
    # The api and worker roles refuse the well-known development secrets (anvil's first dev account
    # as the anchoring key, the database password `provenance`) unless this says so explicitly.
    development: bool = False
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
