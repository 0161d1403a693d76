"""A local node agent for tests: a Node whose pods run as processes on this machine."""

from tests.nodeagent.agent import NodeAgent
from tests.nodeagent.images import LocalImage, local_images

__all__ = ["LocalImage", "NodeAgent", "local_images"]
