"""The gateway's settings, from its command line and environment (BERTH_GATEWAY_*)."""

from __future__ import annotations

import argparse
import os
import socket

from pydantic import BaseModel, ConfigDict, Field

from berth_gateway.limits import BodyLimits, Caps

MODEL_HEADER = "X-Berth-Model"
MODEL_QUERY = "model"


class GatewayConfig(BaseModel):
    """What one gateway process needs to know."""

    model_config = ConfigDict(frozen=True)

    namespaces: tuple[str, ...] = Field(
        default=(), description="Namespaces watched; empty: all namespaces."
    )
    bind: str = "0.0.0.0"
    port: int = 8000
    metrics_port: int = 9091
    keys_secret: str | None = Field(
        default=None, description="Secret of the client keys, in keys_namespace; none: no keys."
    )
    keys_namespace: str = "default"
    model_keys_secret: str | None = Field(
        default=None,
        description="Secret the operator copies the models' own keys into (spec.auth), in "
        "model_keys_namespace; none: models with spec.auth are not served.",
    )
    model_keys_namespace: str = "default"
    max_body_bytes: int = Field(
        default=100 * 2**20, description="Largest body of an upload (not JSON), in bytes."
    )
    max_json_body_bytes: int = Field(default=16 * 2**20, description="Largest JSON body.")
    max_json_depth: int = Field(default=128, ge=2, description="Deepest nesting of a JSON body.")
    body_idle_seconds: float = Field(
        default=30.0, gt=0, description="Seconds the body may pause before the request is 408."
    )
    body_buffer_bytes: int = Field(
        default=192 * 2**20, description="Bytes of request bodies held in memory at once."
    )
    max_in_flight: int = Field(default=2048, ge=1, description="Requests in flight at once.")
    max_in_flight_per_model: int = Field(
        default=512, ge=1, description="Requests in flight to one model at once."
    )
    max_held: int = Field(
        default=1024, ge=1, description="Requests waiting at once for models to come up."
    )
    connect_timeout: float = 5.0
    upstream_timeout: float = 600.0
    drain_seconds: float = Field(
        default=5.0,
        ge=0,
        description="On SIGTERM: seconds not ready but still serving (Services and load "
        "balancers stop sending here) before the listener closes.",
    )
    shutdown_seconds: float = Field(
        default=120.0,
        ge=0,
        description="Then: the most seconds requests in flight get to finish.",
    )
    retry_after_seconds: int = 10
    eject_seconds: float = 5.0
    affinity_load_factor: float = Field(
        default=1.25,
        ge=1.0,
        description="PrefixAffinity: no endpoint takes more than this times the average load.",
    )
    log_level: str = "INFO"
    hold_timeout: float = Field(
        default=600.0,
        description="Least seconds a request waits for an autoscaled model to come up (from "
        "zero); a model whose startup budget is longer is waited for that long.",
    )
    lease_namespace: str = Field(
        default="default",
        description="Namespace of the autoscaler Lease and of each replica's load Lease.",
    )
    identity: str = Field(default="gateway", description="This replica's name in the Leases.")
    pod_uid: str | None = Field(
        default=None, description="This replica's pod: its load Lease goes with it."
    )
    lease_seconds: int = Field(default=15, ge=1, description="Duration of the Leases.")
    autoscale_interval: float = Field(
        default=1.0, gt=0, description="Seconds between the autoscaler's looks at the load."
    )

    def body_limits(self) -> BodyLimits:
        return BodyLimits(
            json_bytes=self.max_json_body_bytes,
            other_bytes=self.max_body_bytes,
            idle_seconds=self.body_idle_seconds,
            max_depth=self.max_json_depth,
        )

    def caps(self) -> Caps:
        return Caps(
            in_flight=self.max_in_flight,
            in_flight_per_model=self.max_in_flight_per_model,
            held=self.max_held,
            buffered_bytes=self.body_buffer_bytes,
            retry_after=self.retry_after_seconds,
        )


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _add_number(
    parser: argparse.ArgumentParser,
    flag: str,
    variable: str,
    default: float,
    help: str | None = None,
) -> None:
    """A numeric option whose default comes from `variable`, else `default` (and its type)."""
    kind = type(default)
    parser.add_argument(flag, type=kind, default=kind(_env(variable, str(default))), help=help)


def parse_args(argv: list[str] | None = None) -> GatewayConfig:
    """The command line, whose defaults come from BERTH_GATEWAY_* variables."""
    defaults = GatewayConfig()
    parser = argparse.ArgumentParser(prog="berth-gateway", description=__doc__)
    parser.add_argument(
        "--namespace",
        action="append",
        default=[n for n in _env("BERTH_GATEWAY_NAMESPACES", "").split(",") if n],
        help="namespace to watch (repeatable); default: all namespaces",
    )
    parser.add_argument("--bind", default=_env("BERTH_GATEWAY_BIND", defaults.bind))
    _add_number(parser, "--port", "BERTH_GATEWAY_PORT", defaults.port)
    _add_number(parser, "--metrics-port", "BERTH_GATEWAY_METRICS_PORT", defaults.metrics_port)
    parser.add_argument(
        "--keys-secret",
        default=os.environ.get("BERTH_GATEWAY_KEYS_SECRET") or None,
        help="Secret of the client keys: each entry holds keys (commas or new lines between them); "
        "an entry NAME.models limits the keys of entry NAME to those models",
    )
    parser.add_argument(
        "--keys-namespace",
        default=_env("BERTH_GATEWAY_KEYS_NAMESPACE", _env("POD_NAMESPACE", "default")),
    )
    parser.add_argument(
        "--model-keys-secret",
        default=os.environ.get("BERTH_GATEWAY_MODEL_KEYS_SECRET") or None,
        help=GatewayConfig.model_fields["model_keys_secret"].description,
    )
    parser.add_argument(
        "--model-keys-namespace",
        default=_env("BERTH_GATEWAY_MODEL_KEYS_NAMESPACE", _env("POD_NAMESPACE", "default")),
    )
    for option in (
        "max_body_bytes",
        "max_json_body_bytes",
        "max_json_depth",
        "body_idle_seconds",
        "body_buffer_bytes",
        "max_in_flight",
        "max_in_flight_per_model",
        "max_held",
        "drain_seconds",
        "shutdown_seconds",
    ):
        _add_number(
            parser,
            "--" + option.replace("_", "-"),
            "BERTH_GATEWAY_" + option.upper(),
            getattr(defaults, option),
            GatewayConfig.model_fields[option].description,
        )
    _add_number(
        parser, "--connect-timeout", "BERTH_GATEWAY_CONNECT_TIMEOUT", defaults.connect_timeout
    )
    _add_number(
        parser,
        "--upstream-timeout",
        "BERTH_GATEWAY_UPSTREAM_TIMEOUT",
        defaults.upstream_timeout,
        "seconds an upstream may stay silent (before its answer starts, or between chunks)",
    )
    _add_number(
        parser,
        "--hold-timeout",
        "BERTH_GATEWAY_HOLD_TIMEOUT",
        defaults.hold_timeout,
        "least seconds a request waits for an autoscaled model to come up (503 after); a "
        "model whose startup budget is longer is waited for that long",
    )
    parser.add_argument(
        "--lease-namespace",
        default=_env("BERTH_GATEWAY_LEASE_NAMESPACE", _env("POD_NAMESPACE", "default")),
        help="namespace of the gateway's Leases (the autoscaler's, each replica's load)",
    )
    parser.add_argument(
        "--identity",
        default=_env("POD_NAME", f"{socket.gethostname()}-{os.getpid()}"),
        help="this replica's name in the Leases (default: the pod's name)",
    )
    _add_number(parser, "--lease-seconds", "BERTH_GATEWAY_LEASE_SECONDS", defaults.lease_seconds)
    _add_number(
        parser,
        "--autoscale-interval",
        "BERTH_GATEWAY_AUTOSCALE_INTERVAL",
        defaults.autoscale_interval,
    )
    _add_number(
        parser,
        "--affinity-load-factor",
        "BERTH_GATEWAY_AFFINITY_LOAD_FACTOR",
        defaults.affinity_load_factor,
        "PrefixAffinity models: an endpoint over this times the average load in flight is "
        "passed over (at least 1)",
    )
    parser.add_argument("--log-level", default=_env("BERTH_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    return GatewayConfig(
        namespaces=tuple(dict.fromkeys(args.namespace)),
        bind=args.bind,
        port=args.port,
        metrics_port=args.metrics_port,
        keys_secret=args.keys_secret,
        keys_namespace=args.keys_namespace,
        model_keys_secret=args.model_keys_secret,
        model_keys_namespace=args.model_keys_namespace,
        max_body_bytes=args.max_body_bytes,
        max_json_body_bytes=args.max_json_body_bytes,
        max_json_depth=args.max_json_depth,
        body_idle_seconds=args.body_idle_seconds,
        body_buffer_bytes=args.body_buffer_bytes,
        max_in_flight=args.max_in_flight,
        max_in_flight_per_model=args.max_in_flight_per_model,
        max_held=args.max_held,
        connect_timeout=args.connect_timeout,
        upstream_timeout=args.upstream_timeout,
        drain_seconds=args.drain_seconds,
        shutdown_seconds=args.shutdown_seconds,
        affinity_load_factor=args.affinity_load_factor,
        log_level=args.log_level,
        hold_timeout=args.hold_timeout,
        lease_namespace=args.lease_namespace,
        identity=args.identity.lower(),
        pod_uid=os.environ.get("POD_UID") or None,
        lease_seconds=args.lease_seconds,
        autoscale_interval=args.autoscale_interval,
    )
