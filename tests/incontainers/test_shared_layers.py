"""The pyannote and NeMo images share the torch image's layers by digest in the registry the
nodes pull from: a node that holds one engine image pulls only the other's own layers."""

from __future__ import annotations

from images import catalog
from images.registry import layers
from tests.incontainers.stack import registry_images


def test_the_speech_engines_share_the_torch_images_layers_by_digest() -> None:
    children = sorted(child for child, parent in catalog.PARENTS.items() if parent == "torch")
    assert children == ["nemo-asr", "pyannote"]
    found = registry_images(("torch", *children))
    torch = layers(found["torch"])
    for child in children:
        own = layers(found[child])
        # the child's first layers are the torch image's, blob for blob
        assert list(own)[: len(torch)] == list(torch), child
        shared = sum(torch.values())
        assert shared > sum(own.values()) / 2, (
            f"{child}: {shared / 1e9:.2f} of {sum(own.values()) / 1e9:.2f} GB shared; "
            "torch and its CUDA libraries should be most of the image"
        )
