"""Command line for the local control plane: `python -m tests.cluster up|down|env|status`."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

from tests.cluster.controlplane import STATE_FILE, ControlPlane, ControlPlaneError

DEFAULT_DIR = Path(tempfile.gettempdir()) / "berth-cluster"


def _env_lines(plane: ControlPlane) -> list[str]:
    env = plane.env()
    return [f"export {key}={shlex.quote(env[key])}" for key in ("KUBECONFIG", "PATH")]


def _running(workdir: Path) -> ControlPlane | None:
    if not (workdir / STATE_FILE).exists():
        return None
    plane = ControlPlane.attach(workdir)
    return plane if all(p.alive() for p in plane.processes) else None


def cmd_up(workdir: Path) -> int:
    if plane := _running(workdir):
        print(f"# already running in {workdir}", file=sys.stderr)
    else:
        if (workdir / STATE_FILE).exists():
            ControlPlane.attach(workdir).destroy()
        plane = ControlPlane(workdir=workdir, tied_to_parent=False)
        try:
            plane.start()
        except ControlPlaneError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        mib = sum(plane.memory_rss_bytes().values()) / 2**20
        print(
            f"# control plane up in {plane.startup_seconds:.1f} s at {plane.server} "
            f"({mib:.0f} MiB resident); logs in {workdir / 'logs'}",
            file=sys.stderr,
        )
    print("\n".join(_env_lines(plane)))
    return 0


def cmd_down(workdir: Path) -> int:
    if not (workdir / STATE_FILE).exists():
        print(f"# nothing running in {workdir}", file=sys.stderr)
        return 0
    ControlPlane.attach(workdir).destroy()
    print(f"# stopped and removed {workdir}", file=sys.stderr)
    return 0


def cmd_env(workdir: Path) -> int:
    plane = _running(workdir)
    if plane is None:
        print(f"error: no control plane running in {workdir}; run `up` first", file=sys.stderr)
        return 1
    print("\n".join(_env_lines(plane)))
    return 0


def cmd_status(workdir: Path) -> int:
    if not (workdir / STATE_FILE).exists():
        print(json.dumps({"running": False}))
        return 1
    plane = ControlPlane.attach(workdir)
    report = {
        "running": all(p.alive() for p in plane.processes),
        "server": plane.server,
        "processes": {p.name: {"pid": p.pid, "alive": p.alive()} for p in plane.processes},
        "rss_mib": round(sum(plane.memory_rss_bytes().values()) / 2**20),
    }
    print(json.dumps(report, indent=2))
    return 0 if report["running"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "env", "status"])
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("BERTH_CLUSTER_DIR", DEFAULT_DIR)),
        help=f"working directory of the control plane (default {DEFAULT_DIR})",
    )
    args = parser.parse_args(argv)
    commands = {"up": cmd_up, "down": cmd_down, "env": cmd_env, "status": cmd_status}
    return commands[args.command](args.dir.resolve())


if __name__ == "__main__":
    sys.exit(main())
