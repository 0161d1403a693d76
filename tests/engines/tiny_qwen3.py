"""Builds two tiny random Qwen3 models for the vllm engine tests, in the HF layout vLLM loads.

Run with the vllm/cpu environment's python: `python tests/engines/tiny_qwen3.py OUTDIR`. It
writes OUTDIR/dense (Qwen3ForCausalLM) and OUTDIR/vl-moe (Qwen3VLMoeForConditionalGeneration,
the architecture of Qwen3-VL-30B-A3B-Instruct), both with a byte-level BPE tokenizer trained
here and a Qwen-style chat template, and OUTDIR/adapters/NAME: random LoRA adapters of the
dense model written by peft (ADAPTERS). vLLM's CPU backend wants attention heads of 32 or more,
and MoE hidden and expert sizes that are multiples of 32.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

SEED = 1234
HIDDEN = 64
HEAD_DIM = 32
MAX_POSITIONS = 2048
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
WORDS = (
    "the a model answers questions about images and text while people ask what the weather "
    "is like today in paris berlin and tokyo a red square on a white background is an image "
    "hello how are you fine thanks one two three four five six seven eight nine ten"
)

#: Qwen's chat format; content is a string or a list of text, image and video parts
CHAT_TEMPLATE = """\
{%- for message in messages -%}
<|im_start|>{{ message['role'] }}
{% if message['content'] is string -%}
{{ message['content'] }}
{%- else -%}
{%- for part in message['content'] -%}
{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}
<|vision_start|><|image_pad|><|vision_end|>
{%- elif part['type'] == 'video' or 'video' in part -%}
<|vision_start|><|video_pad|><|vision_end|>
{%- elif 'text' in part -%}
{{ part['text'] }}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
<|im_end|>
{% endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% endif -%}
"""


def corpus(lines: int = 400) -> list[str]:
    rng = random.Random(SEED)
    words = WORDS.split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) for _ in range(lines)]


def tokenizer() -> Any:
    """A byte-level BPE tokenizer (any text encodes) with Qwen's special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=448,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
        model_max_length=MAX_POSITIONS,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def vocab_size(tokens: Any) -> int:
    """The embedding size: the tokenizer's, rounded up to a multiple of 64."""
    return -(-len(tokens) // 64) * 64


def text_config(tokens: Any) -> dict[str, Any]:
    """What both models' language parts share."""
    return {
        "vocab_size": vocab_size(tokens),
        "hidden_size": HIDDEN,
        "intermediate_size": 2 * HIDDEN,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": HEAD_DIM,
        "max_position_embeddings": MAX_POSITIONS,
        "tie_word_embeddings": False,
        "bos_token_id": tokens.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokens.convert_tokens_to_ids("<|im_end|>"),
        "pad_token_id": tokens.convert_tokens_to_ids("<|endoftext|>"),
    }


def generation_config(tokens: Any, outdir: Path) -> None:
    (outdir / "generation_config.json").write_text(
        json.dumps(
            {
                "bos_token_id": tokens.convert_tokens_to_ids("<|endoftext|>"),
                "eos_token_id": [tokens.convert_tokens_to_ids("<|im_end|>")],
                "pad_token_id": tokens.convert_tokens_to_ids("<|endoftext|>"),
            }
        )
    )


def build_dense(tokens: Any, outdir: Path) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    model = Qwen3ForCausalLM(Qwen3Config(**text_config(tokens), dtype="bfloat16"))
    model.to(torch.bfloat16).save_pretrained(outdir)
    tokens.save_pretrained(outdir)
    generation_config(tokens, outdir)


#: name -> (rank, target modules) of the dense model's adapters; "wide" is over vLLM's default
#: max rank (16)
ADAPTERS = {
    "sql": (8, ["q_proj", "v_proj"]),
    "fr": (8, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    "poem": (16, ["q_proj", "k_proj", "v_proj", "o_proj"]),
    "wide": (64, ["q_proj", "v_proj"]),
}
#: what each adapter's config names as its base (adapter_config.json's base_model_name_or_path)
ADAPTER_BASE = "tiny/qwen3-dense"


def build_adapters(base_dir: Path, outdir: Path) -> None:
    """Random LoRA adapters of the dense model, in the PEFT layout. B is random too (peft's
    default starts it at zero, which would change nothing), and the scale is high, so that each
    adapter moves the tiny model's greedy answers away from the base's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3ForCausalLM

    for index, (name, (rank, modules)) in enumerate(ADAPTERS.items()):
        torch.manual_seed(SEED + 1 + index)
        base = Qwen3ForCausalLM.from_pretrained(base_dir, dtype=torch.bfloat16)
        config = LoraConfig(
            r=rank,
            lora_alpha=4 * rank,
            target_modules=modules,
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(base, config)
        with torch.no_grad():
            for parameter_name, parameter in model.named_parameters():
                if "lora_" in parameter_name:
                    parameter.normal_(0.0, 0.5)
        model.save_pretrained(outdir / name)
        saved = outdir / name / "adapter_config.json"
        config_json = json.loads(saved.read_text())
        config_json["base_model_name_or_path"] = ADAPTER_BASE
        saved.write_text(json.dumps(config_json, indent=2))


def released_expert_layout(state: dict[str, Any]) -> dict[str, Any]:
    """transformers keeps experts as gate_up_proj [E, 2I, hidden] and down_proj [E, hidden, I];
    the released checkpoints, which vLLM loads, hold [E, hidden, 2I] and [E, I, hidden]."""
    return {
        name: tensor.transpose(1, 2).contiguous()
        if name.endswith(("experts.gate_up_proj", "experts.down_proj"))
        else tensor
        for name, tensor in state.items()
    }


def build_vl_moe(tokens: Any, outdir: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLMoeConfig,
        Qwen3VLMoeForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    text = text_config(tokens) | {
        "moe_intermediate_size": 32,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "decoder_sparse_step": 1,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 5000000.0,
            "mrope_section": [6, 5, 5],  # sums to head_dim / 2
            "mrope_interleaved": True,
        },
    }
    vision = {
        "depth": 2,
        "hidden_size": HIDDEN,
        "num_heads": 2,
        "intermediate_size": 2 * HIDDEN,
        "out_hidden_size": HIDDEN,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "num_position_embeddings": 2304,
        "deepstack_visual_indexes": [1],
    }
    ids = {
        f"{name}_token_id": tokens.convert_tokens_to_ids(f"<|{token}|>")
        for name, token in (
            ("image", "image_pad"),
            ("video", "video_pad"),
            ("vision_start", "vision_start"),
            ("vision_end", "vision_end"),
        )
    }
    config = Qwen3VLMoeConfig(
        text_config=text, vision_config=vision, tie_word_embeddings=False, **ids
    )
    model = Qwen3VLMoeForConditionalGeneration(config).to(torch.bfloat16)
    outdir.mkdir(parents=True, exist_ok=True)
    state = released_expert_layout(model.state_dict())
    save_file(state, str(outdir / "model.safetensors"), metadata={"format": "pt"})
    config.architectures = ["Qwen3VLMoeForConditionalGeneration"]
    config.save_pretrained(outdir)
    saved = json.loads((outdir / "config.json").read_text())
    saved["dtype"] = "bfloat16"
    # as the released config.json says them: transformers drops the one and renames the other
    saved["text_config"]["norm_topk_prob"] = True
    saved["text_config"]["num_experts"] = saved["text_config"].pop("num_local_experts")
    (outdir / "config.json").write_text(json.dumps(saved, indent=2))
    pixels = {"shortest_edge": 32 * 32, "longest_edge": 128 * 128}  # at most 16 image tokens
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(
            size=pixels, patch_size=16, merge_size=2, temporal_patch_size=2
        ),
        tokenizer=tokens,
        video_processor=Qwen3VLVideoProcessor(
            size=pixels, patch_size=16, merge_size=2, temporal_patch_size=2
        ),
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(outdir)
    generation_config(tokens, outdir)


def main() -> None:
    import torch

    started = time.monotonic()
    torch.manual_seed(SEED)
    outdir = Path(sys.argv[1])
    tokens = tokenizer()
    build_dense(tokens, outdir / "dense")
    build_vl_moe(tokens, outdir / "vl-moe")
    build_adapters(outdir / "dense", outdir / "adapters")
    print(f"built {outdir} in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
