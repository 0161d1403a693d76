"""`make images`: the base, then each image built when its content changed, pushed to a registry.

An image built on another (catalog.PARENTS: two engines on the torch image) has that one built
and pushed first.

python -m images [--registry HOST/PATH] [--no-push] [NAME ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from berth_operator.config import DEFAULT_TAG

from images import base, build, catalog, registry
from images.buildah import buildah

CACHE = Path.home() / ".cache" / "berth"


def main() -> None:
    """Builds the named images (all five by default) and prints a line per image."""
    parser = argparse.ArgumentParser(prog="python -m images", description=__doc__.splitlines()[0])
    # [] among the choices: argparse checks the empty default against them too
    parser.add_argument("names", nargs="*", choices=[[], *catalog.DOCKERFILES], metavar="NAME")
    parser.add_argument("--registry", default=f"{registry.LOCAL}/berth-dev")
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.add_argument("--no-push", action="store_true")
    parser.add_argument(
        "--plan", action="store_true", help="print the release's build plan and exit"
    )
    parser.add_argument(
        "--stop-registry", action="store_true", help="stop the local registry and exit"
    )
    arguments = parser.parse_args()
    if arguments.plan:
        print(json.dumps(catalog.plan()))
        return
    missing = [
        tool for tool in ("buildah", "mmdebstrap", "docker-registry") if not shutil.which(tool)
    ]
    if missing:
        raise SystemExit(
            f"make images needs {', '.join(missing)}: apt-get install {' '.join(missing)}"
        )
    if arguments.stop_registry:
        registry.stop_local(CACHE / "registry")
        return
    start = time.monotonic()
    base_image = base.base_image(CACHE / "images")
    print(f"base {base_image} ready in {time.monotonic() - start:.0f} s", flush=True)
    if not arguments.no_push and registry.is_local(arguments.registry):
        registry.ensure_local(CACHE / "registry", arguments.registry.split("/", 1)[0])
    # what the last builds left, per image, for tools that run them (e.g. a test node)
    record_file = CACHE / "images" / "images.json"
    record = json.loads(record_file.read_text()) if record_file.exists() else {}
    names = arguments.names or list(catalog.DOCKERFILES)
    parents = [parent for parent in catalog.BASES if parent in map(catalog.PARENTS.get, names)]
    for name in [*parents, *names]:
        image = build.build(name, base_image, arguments.tag)
        pushing = time.monotonic()
        pushed = [] if arguments.no_push else build.push(image, arguments.registry, arguments.tag)
        how = "built" if image.rebuilt else "unchanged"
        print(
            f"{name:<10} {how} in {image.seconds:4.0f} s, pushed in "
            f"{time.monotonic() - pushing:4.0f} s, {image.size:>8}, {' '.join(pushed) or image.local}",
            flush=True,
        )
        record[name] = {
            "local": image.local,
            "content": image.key,
            "pushed": pushed,
            "size": image.size,
        }
    record_file.write_text(json.dumps(record, indent=2) + "\n")
    # the layers that only replaced images and their cache steps held (engines: GBs each)
    buildah("rmi", "--prune")
    print(f"images ready in {time.monotonic() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
