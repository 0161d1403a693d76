"""The vllm engine: supervises vLLM's own OpenAI server (`vllm serve`) on the service port."""

from berth_runtime.engines.vllm.args import child_env, serve_args
from berth_runtime.engines.vllm.failures import Failure, classify, failure_message
from berth_runtime.engines.vllm.supervisor import VllmSupervisor, main

__all__ = [
    "Failure",
    "VllmSupervisor",
    "child_env",
    "classify",
    "failure_message",
    "main",
    "serve_args",
]
