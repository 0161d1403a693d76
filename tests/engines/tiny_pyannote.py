"""Writes a tiny random speaker-diarization pipeline repo (run with the pyannote env's python).

    tiny_pyannote.py OUTDIR [--community]

Default: a speaker-diarization-3.1-style config (agglomerative clustering); `--community`: a
speaker-diarization-community-1-style one (VBx clustering on the PLDA). Both reference their
parts as `$model/<subfolder>`, so they load offline from wherever the repo lies:

    config.yaml
    segmentation/pytorch_model.bin   PyanNet, powerset (3 speakers, at most 2 at once), 10 s
    embedding/pytorch_model.bin      XVectorMFCC(dimension=64), fitted to two espeak-ng voices
    plda/xvec_transform.npz          {mean1 (64), mean2 (128), lda (64x128)}
    plda/plda.npz                    {mu (128), tr (128x128), psi (128)}

The embedding is XVectorMFCC, not the WeSpeaker ResNet34 that 3.1 names: the ResNet's size is
fixed (26 MB, slow on a CPU), while XVectorMFCC takes the `weights` masks the pipeline passes
and has a small output dimension. Its weights are stored in float16 (half the bytes; loading
casts them back to float32).

The embedding is not random: it tells the two espeak-ng voices of the tests (VOICES) apart,
so a reference clip of one voice matches that voice's speaker deterministically. Its first
layer projects each frame's MFCCs on the direction that separates the two voices' mean MFCCs
(Fisher's discriminant, fitted on TRAINING_TEXTS spoken by each), later layers pass that
through, and the output is (projection, OFFSET, 0, ...): one voice points one way, the other
the other way, and cosine similarities between clips say which voice spoke.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

import numpy as np
import torch
import yaml
from pyannote.audio import __version__ as pyannote_version
from pyannote.audio.core.model import Model
from pyannote.audio.core.task import Problem, Resolution, Specifications
from pyannote.audio.models.embedding import XVectorMFCC
from pyannote.audio.models.segmentation import PyanNet
from speech import VOICES, speak  # tests/engines/speech.py, next to this script

SEED = 20261
EMBEDDING_DIMENSION = 64
LDA_DIMENSION = 128  # the PLDA's default lda_dimension
TRAINING_TEXTS = (
    "Numbers like seven and twelve are easy to say.",
    "Please read the whole report before Friday.",
    "Good morning everybody, welcome to the meeting.",
    "The train leaves the station at half past nine.",
)
LEAD = 1.0  # the bias of the powerset class {speaker#1} over the others (all 0)
OFFSET = 0.3  # the constant second coordinate: keeps every embedding away from zero


def save_checkpoint(model: Model, path: Path, half: bool = False) -> None:
    """Saves `model` as pyannote's Model.from_pretrained reads it (a Lightning checkpoint)."""
    import lightning

    state = {
        key: value.half() if half and value.is_floating_point() else value
        for key, value in model.state_dict().items()
    }
    checkpoint: dict[str, Any] = {
        "state_dict": state,
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    model.on_save_checkpoint(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)


def segmentation_model() -> PyanNet:
    """A small random PyanNet with the powerset specifications of segmentation-3.0."""
    model = PyanNet(
        sincnet={"stride": 10},
        lstm={"hidden_size": 32, "num_layers": 1, "bidirectional": True, "monolithic": True},
        linear={"hidden_size": 32, "num_layers": 1},
    )
    model.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=10.0,
        min_duration=10.0,
        classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2,
        permutation_invariant=True,
    )
    model.build()
    # one speaker at a time: the powerset class {speaker#1} leads, so each chunk has one clean
    # local speaker whose embedding says which voice spoke in it (the input shifts the rest)
    torch.nn.init.zeros_(model.classifier.bias)
    with torch.no_grad():
        model.classifier.bias[1] = LEAD
    model.eval()
    return model


def voice_direction(model: XVectorMFCC) -> tuple[torch.Tensor, float]:
    """The MFCC direction separating VOICES[0] (positive) from VOICES[1] (negative), scaled so
    that a clip's mean projection is about +-1, and the bias that centres it between the two."""
    means = []
    spreads = []
    for voice in VOICES:
        features = []
        for text in TRAINING_TEXTS:
            mfcc = model.mfcc(torch.from_numpy(speak(text, voice))[None, None]).squeeze()
            features.append(mfcc.mean(dim=1))
        stacked = torch.stack(features).double()
        means.append(stacked.mean(dim=0))
        spreads.append(stacked.var(dim=0))
    direction = (means[0] - means[1]) / (spreads[0] + spreads[1] + 1e-3)
    centre = (means[0] + means[1]) / 2
    half_gap = float(direction @ (means[0] - centre))
    direction /= half_gap
    return direction.float(), -float(direction @ centre)


def embedding_model() -> XVectorMFCC:
    """An x-vector model whose 64-dimensional output says which of VOICES spoke (module doc)."""
    model = XVectorMFCC(dimension=EMBEDDING_DIMENSION)
    model.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=5.0
    )
    direction, bias = voice_direction(model)
    with torch.no_grad():
        for layer in model.tdnns:
            for parameter in layer.parameters():
                parameter.zero_()
            if isinstance(layer, torch.nn.BatchNorm1d):
                layer.weight.fill_(1.0)  # identity (running mean 0, variance 1)
        first = model.tdnns[0]
        centre_tap = first.kernel_size[0] // 2
        first.weight[0, :, centre_tap] = direction  # channel 0: the projection's positive part
        first.weight[1, :, centre_tap] = -direction  # channel 1: its negative part
        first.bias[0], first.bias[1] = bias, -bias
        for conv in model.tdnns[3::3]:  # the later convolutions pass channels 0 and 1 through
            tap = conv.kernel_size[0] // 2
            conv.weight[0, 0, tap] = conv.weight[1, 1, tap] = 1.0
        model.embedding.weight.zero_()
        model.embedding.bias.zero_()
        # mean(channel 0) - mean(channel 1): the mean projection (the leaky ReLUs keep it linear)
        model.embedding.weight[0, 0], model.embedding.weight[0, 1] = 1.0, -1.0
        model.embedding.bias[1] = OFFSET
    model.eval()
    return model


def write_plda(directory: Path, rng: np.random.Generator) -> None:
    """Random but well-formed PLDA arrays: an invertible transform, positive psi."""
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(
        directory / "xvec_transform.npz",
        mean1=rng.normal(0, 0.1, EMBEDDING_DIMENSION),
        mean2=rng.normal(0, 0.1, LDA_DIMENSION),
        lda=rng.normal(0, 1, (EMBEDDING_DIMENSION, LDA_DIMENSION)),
    )
    tr, _ = np.linalg.qr(rng.normal(0, 1, (LDA_DIMENSION, LDA_DIMENSION)))
    np.savez(
        directory / "plda.npz",
        mu=rng.normal(0, 0.1, LDA_DIMENSION),
        tr=tr,
        psi=np.sort(rng.uniform(0.5, 5.0, LDA_DIMENSION))[::-1].copy(),
    )


def pipeline_config(community: bool) -> dict[str, Any]:
    """config.yaml: the same parts, wired as 3.1 or as community-1 wires them."""
    params: dict[str, Any] = {
        "segmentation": "$model/segmentation",
        "embedding": "$model/embedding",
        "plda": "$model/plda",
        "embedding_exclude_overlap": True,
        "segmentation_batch_size": 8,
        "embedding_batch_size": 8,
        "segmentation_step": 0.5,  # 5 s hops: a tenth of the CPU time of 3.1's 1 s
    }
    if community:
        return {
            "dependencies": {"pyannote.audio": pyannote_version},
            "pipeline": {
                "name": "pyannote.audio.pipelines.SpeakerDiarization",
                "params": {**params, "clustering": "VBxClustering"},
            },
            "params": {
                "clustering": {"threshold": 0.6, "Fa": 0.07, "Fb": 0.8},
                "segmentation": {"min_duration_off": 0.0},
            },
        }
    return {
        "version": "3.1.0",
        "pipeline": {
            "name": "pyannote.audio.pipelines.SpeakerDiarization",
            "params": {**params, "clustering": "AgglomerativeClustering"},
        },
        "params": {
            "clustering": {"method": "centroid", "min_cluster_size": 2, "threshold": 0.7},
            "segmentation": {"min_duration_off": 0.0},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--community", action="store_true", help="community-1-style config")
    args = parser.parse_args()

    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    out: Path = args.outdir
    save_checkpoint(segmentation_model(), out / "segmentation" / "pytorch_model.bin")
    save_checkpoint(embedding_model(), out / "embedding" / "pytorch_model.bin", half=True)
    write_plda(out / "plda", rng)
    (out / "config.yaml").write_text(yaml.safe_dump(pipeline_config(args.community)))
    print(out)


if __name__ == "__main__":
    main()
