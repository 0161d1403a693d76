"""Why vLLM exited, read from the tail of its log: a reason for status and a bounded message."""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Failure:
    reason: str
    summary: str


#: (reason, summary, patterns): the first reason with a matching line wins
RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "CudaOutOfMemory",
        "vLLM ran out of GPU memory: lower gpuMemoryUtilization or maxModelLen, or add GPUs",
        (r"CUDA out of memory", r"OutOfMemoryError", r"CUDA error: out of memory"),
    ),
    (
        "InsufficientKvCache",
        "the KV cache does not fit in GPU memory: lower maxModelLen, raise gpuMemoryUtilization "
        "or add GPUs",
        (
            r"No available memory for the cache blocks",
            r"KV cache is needed, which is larger than the available KV cache memory",
            r"larger than the available KV cache",
        ),
    ),
    (
        "MaxModelLenTooLarge",
        "maxModelLen is over what the model supports: lower it",
        (r"User-specified max_model_len .* is greater than the derived max_model_len",),
    ),
    (
        "ModelFilesMissing",
        "the model's files are not in the cache: run the download again (vLLM runs offline)",
        (
            r"LocalEntryNotFoundError",
            r"OfflineModeIsEnabled",
            r"does not appear to have a file named",
            r"Cannot find any model weights",
            r"No such file or directory: .*(safetensors|\.bin|config\.json|tokenizer)",
            r"Can't load (the )?(tokenizer|config|processor)",
        ),
    ),
    (
        "NoGpuAvailable",
        "vLLM found no usable GPU: check the node's NVIDIA driver and the GPU request",
        (
            r"No CUDA GPUs are available",
            r"Failed to infer device type",
            r"libcuda\.so[.\d]*: cannot open shared object file",
            r"Found no NVIDIA driver",
        ),
    ),
    (
        "InvalidArguments",
        "vLLM refused its arguments: check spec.vllm (extraArgs in particular)",
        (r"vllm serve: error:", r"error: unrecognized arguments", r"error: argument "),
    ),
)


def clean(line: str, width: int = 400) -> str:
    """One log line without colours or trailing space, cut to `width` characters."""
    return ANSI.sub("", line).rstrip()[:width]


def classify(returncode: int, lines: Sequence[str]) -> Failure:
    """The reason vLLM exited: a known cause found in its log lines, else EngineExited."""
    for reason, summary, patterns in RULES:
        if any(re.search(p, line) for p in patterns for line in lines):
            return Failure(reason, summary)
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else ""
        cause = " (the container may have run out of memory)" if name == "SIGKILL" else ""
        return Failure("EngineKilled", f"vLLM was killed by {name or -returncode}{cause}")
    return Failure("EngineExited", f"vLLM exited with code {returncode}")


def failure_message(
    failure: Failure, returncode: int, lines: Sequence[str], limit: int = 2000
) -> str:
    """The summary, then as many of the last log lines as fit in `limit` characters."""
    head = f"{failure.summary} (exit code {returncode}). Last lines of vLLM's log:"
    budget = limit - len(head)
    tail: list[str] = []
    for line in reversed([clean(x) for x in lines if x.strip()]):
        if len(line) + 1 > budget:
            break
        tail.append(line)
        budget -= len(line) + 1
    return "\n".join([head, *reversed(tail)])
