"""Builds a tiny random canary2 model (`canary-tiny.nemo`) for the nemo-asr engine tests.

Run with the nemo-asr environment's python: `python tests/engines/tiny_canary.py OUTDIR`.
Like canary-1b-v2 it carries a CTC alignment model inside its `.nemo` for word timestamps.
"""

from __future__ import annotations

import random
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

LANGUAGES = ("en", "de", "fr", "es")
HIDDEN = 32
FEATURES = 32
SEED = 1234

WORDS = {
    "en": "the quick brown fox jumps over a lazy dog while people speak about weather and time today",
    "de": "der schnelle braune fuchs springt über den faulen hund während leute über wetter sprechen",
    "fr": "le renard brun rapide saute par dessus le chien paresseux pendant que les gens parlent",
    "es": "el rápido zorro marrón salta sobre el perro perezoso mientras la gente habla del tiempo",
}

# canary2's prompt needs these besides the default ones (language tokens are added below)
CANARY2_SPECIAL = [
    "<|startofcontext|>",
    "<|itn|>",
    "<|noitn|>",
    "<|timestamp|>",
    "<|notimestamp|>",
    "<|diarize|>",
    "<|nodiarize|>",
    "<|emo:undefined|>",
    "<|emo:neutral|>",
    "<|emo:angry|>",
    "<|emo:happy|>",
    "<|emo:sad|>",
]


def corpus(language: str, lines: int = 300) -> str:
    """Random sentences from a small word list, with punctuation and capitals."""
    rng = random.Random(f"{SEED}-{language}")
    words = WORDS[language].split()
    out = []
    for _ in range(lines):
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(3, 10)))
        out.append(sentence.capitalize() + rng.choice([".", "?", "!", ","]))
    return "\n".join(out)


def spm(text: str, directory: Path, vocab_size: int) -> Path:
    """A SentencePiece bpe tokenizer (tokenizer.model, vocab.txt) trained on `text`."""
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "text.txt").write_text(text)
    create_spt_model(
        str(directory / "text.txt"),
        vocab_size=vocab_size,
        sample_size=-1,
        do_lower_case=False,
        tokenizer_type="bpe",
        output_dir=str(directory),
    )
    return directory


def special_tokenizer(directory: Path, language_vocab: int) -> Path:
    """The spl_tokens tokenizer, padded so that the whole vocabulary is a multiple of 8."""
    from nemo.collections.common.tokenizers.canary_tokenizer import CanaryTokenizer

    tokens = CANARY2_SPECIAL + [f"<|{lang}|>" for lang in LANGUAGES]
    base = 6 + len(tokens) + 2  # DEFAULT_TOKENS + ours + the two SentencePiece adds
    total = base + language_vocab * len(LANGUAGES)
    tokens += [f"<|spltoken{i}|>" for i in range(-total % 8)]
    CanaryTokenizer.build_special_tokenizer(tokens, directory)
    return directory


def preprocessor() -> dict[str, Any]:
    return {
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "sample_rate": 16000,
        "normalize": "per_feature",
        "window_size": 0.025,
        "window_stride": 0.01,
        "window": "hann",
        "features": FEATURES,
        "n_fft": 512,
        "log": True,
        "frame_splicing": 1,
        "dither": 0.0,
        "pad_to": 0,
        "pad_value": 0.0,
    }


def conformer(subsampling: int = 8) -> dict[str, Any]:
    return {
        "_target_": "nemo.collections.asr.modules.ConformerEncoder",
        "feat_in": FEATURES,
        "feat_out": -1,
        "n_layers": 1,
        "d_model": HIDDEN,
        "subsampling": "dw_striding",
        "subsampling_factor": subsampling,
        "subsampling_conv_channels": HIDDEN,
        "ff_expansion_factor": 2,
        "self_attention_model": "rel_pos",
        "n_heads": 2,
        "att_context_size": [-1, -1],
        "xscaling": True,
        "untie_biases": True,
        "pos_emb_max_len": 5000,
        "conv_kernel_size": 9,
        "conv_norm_type": "batch_norm",
        "dropout": 0.0,
        "dropout_pre_encoder": 0.0,
        "dropout_emb": 0.0,
        "dropout_att": 0.0,
    }


def canary_config(tokenizers: Path) -> dict[str, Any]:
    langs = {"spl_tokens": {"dir": str(tokenizers / "spl_tokens"), "type": "bpe"}}
    langs |= {lang: {"dir": str(tokenizers / lang), "type": "bpe"} for lang in LANGUAGES}
    return {
        "sample_rate": 16000,
        "prompt_format": "canary2",
        "prompt_defaults": [
            {
                "role": "user",
                "slots": {
                    "decodercontext": "",
                    "source_lang": "en",
                    "target_lang": "en",
                    "emotion": "<|emo:undefined|>",
                    "pnc": "yes",
                    "itn": "no",
                    "timestamp": "no",
                    "diarize": "no",
                },
            },
            {"role": "user_partial", "slots": {"decodercontext": ""}},
        ],
        "model_defaults": {
            "asr_enc_hidden": HIDDEN,
            "lm_enc_hidden": HIDDEN,
            "lm_dec_hidden": HIDDEN,
        },
        "tokenizer": {
            "type": "agg",
            "langs": langs,
            "custom_tokenizer": {
                "_target_": "nemo.collections.common.tokenizers.canary_tokenizer.CanaryTokenizer"
            },
        },
        "preprocessor": preprocessor(),
        "encoder": conformer(),
        "transf_decoder": {
            "_target_": "nemo.collections.asr.modules.transformer.get_nemo_transformer",
            "model_name": None,
            "pretrained": False,
            "encoder": None,
            "pre_ln_final_layer_norm": True,
            "config_dict": {
                "max_sequence_length": 48,
                "num_token_types": 0,
                "embedding_dropout": 0.0,
                "learn_positional_encodings": False,
                "hidden_size": HIDDEN,
                "inner_size": 2 * HIDDEN,
                "num_layers": 1,
                "num_attention_heads": 2,
                "ffn_dropout": 0.0,
                "attn_score_dropout": 0.0,
                "attn_layer_dropout": 0.0,
                "hidden_act": "relu",
                "pre_ln": True,
                "vocab_size": None,
            },
        },
        "head": {
            "_target_": "nemo.collections.asr.parts.submodules.token_classifier.TokenClassifier",
            "num_layers": 1,
            "activation": "relu",
            "log_softmax": True,
            "hidden_size": HIDDEN,
            "num_classes": None,
            "dropout": 0.0,
            "use_transformer_init": True,
        },
        "loss": {
            "_target_": "nemo.collections.common.losses.smoothed_cross_entropy.SmoothedCrossEntropyLoss",
            "label_smoothing": 0.0,
        },
    }


def quiet_special_tokens(model: Any) -> None:
    """Random weights would emit prompt tokens (`<|nodiarize|>`) as text, which a trained model
    never does: bias the output layer against every special token but end-of-text."""
    import torch

    tokenizer = model.tokenizer
    with torch.no_grad():
        bias = model.log_softmax.mlp.layer0.bias
        for token_id in tokenizer.special_tokens.values():
            if token_id != tokenizer.eos_id:
                bias[token_id] = -30.0


def ctc_config(tokenizer: Path) -> dict[str, Any]:
    return {
        "sample_rate": 16000,
        "tokenizer": {"dir": str(tokenizer), "type": "bpe"},
        "preprocessor": preprocessor(),
        "encoder": conformer(subsampling=4),  # finer frames: room to align random text
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": HIDDEN,
            "num_classes": -1,  # the tokenizer's size
            "vocabulary": [],
        },
    }


def add_alignment_model(nemo_file: Path, ctc_file: Path, work: Path) -> None:
    """Packs the CTC model into the canary .nemo the way canary-1b-v2 ships it."""
    renames = {
        "model_config.yaml": "timestamps_asr_model_config.yaml",
        "model_weights.ckpt": "timestamps_asr_model_weights.ckpt",
    }
    members: dict[str, bytes] = {}
    for source, rename in ((nemo_file, {}), (ctc_file, renames)):
        with tarfile.open(source, "r:*") as tar:
            for member in tar.getmembers():
                if member.isfile():
                    name = Path(member.name).name
                    name = rename.get(name, name)
                    assert name not in members or source == nemo_file, f"clash: {name}"
                    members[name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    staging = work / "packed"
    staging.mkdir()
    with tarfile.open(nemo_file, "w:") as tar:
        for name, data in sorted(members.items()):
            (staging / name).write_bytes(data)
            tar.add(staging / name, arcname=f"./{name}")


def build(outdir: Path) -> Path:
    import numpy as np
    import torch
    from nemo.collections.asr.models import EncDecCTCModelBPE, EncDecMultiTaskModel
    from omegaconf import OmegaConf

    torch.manual_seed(SEED)
    np.random.seed(SEED)
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        language_vocab = 64
        for lang in LANGUAGES:
            spm(corpus(lang), work / "tok" / lang, language_vocab)
        special_tokenizer(work / "tok" / "spl_tokens", language_vocab)
        canary = EncDecMultiTaskModel(cfg=OmegaConf.create(canary_config(work / "tok")))
        quiet_special_tokens(canary)
        target = outdir / "canary-tiny.nemo"
        canary.eval().save_to(str(target))

        everything = "\n".join(corpus(lang) for lang in LANGUAGES)
        ctc_dir = spm(everything, work / "tok" / "ctc", 96)
        ctc = EncDecCTCModelBPE(cfg=OmegaConf.create(ctc_config(ctc_dir)))
        ctc.eval().save_to(str(work / "ctc.nemo"))
        add_alignment_model(target, work / "ctc.nemo", work)
    return target


def main() -> None:
    started = time.monotonic()
    target = build(Path(sys.argv[1]))
    print(f"built {target} ({target.stat().st_size} bytes) in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
