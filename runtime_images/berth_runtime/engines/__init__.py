"""Engine wrappers: one module per model server (vllm, nemo_asr, pyannote)."""
