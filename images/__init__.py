"""Berth's container images, built with buildah from package registries alone (`make images`)."""
