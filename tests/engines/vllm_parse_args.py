"""Parses `vllm serve` argument lists with the pinned vLLM's own parser (run in the vllm/cpu env).

stdin: {"argvs": [[MODEL, "--flag", ...], ...], "engine_config": false}; stdout (last line): a
JSON list, per argv {"ok": bool, "stage": "parse" | "engine_config", "args": {...}, "error": "..."}.
With engine_config, parsed argvs also build vLLM's engine config, where range errors show (a
tensor parallel size that does not divide the heads, a context over the model's): this needs
MODEL/config.json, no GPU and no weights.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from typing import Any

from vllm_cpu_launcher import answer_vllm_metadata

FIELDS = (
    "model",
    "host",
    "port",
    "served_model_name",
    "tensor_parallel_size",
    "max_model_len",
    "gpu_memory_utilization",
    "limit_mm_per_prompt",
    "trust_remote_code",
    "enable_prefix_caching",
    "max_num_seqs",
    "api_key",
    "enable_lora",
    "max_loras",
    "max_lora_rank",
    "max_cpu_loras",
    "lora_modules",
)


def plain(value: Any) -> Any:
    """JSON-able form of a parsed value."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def main() -> None:
    request = json.load(sys.stdin)
    answer_vllm_metadata()  # so that vLLM finds its platform (the CPU) as `vllm serve` does
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    results = []
    for argv in request["argvs"]:
        parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                args = parser.parse_args(argv)
            args.model = args.model_tag or args.model
            validate_parsed_serve_args(args)
        except SystemExit as exit_:
            error = (stderr.getvalue().strip().splitlines() or [f"exit {exit_}"])[-1]
            results.append({"ok": False, "stage": "parse", "error": error})
            continue
        except Exception as error:
            results.append(
                {"ok": False, "stage": "parse", "error": f"{type(error).__name__}: {error}"}
            )
            continue
        result = {
            "ok": True,
            "stage": "parse",
            "args": {f: plain(getattr(args, f)) for f in FIELDS},
        }
        if request.get("engine_config"):
            result["stage"] = "engine_config"
            try:
                AsyncEngineArgs.from_cli_args(args).create_engine_config()
            except Exception as error:
                result |= {"ok": False, "error": f"{type(error).__name__}: {error}"}
        results.append(result)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
