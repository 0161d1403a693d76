"""The operator's view of the cluster: the latest copy of each watched object, indexed by label
and by owner."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from berth_operator.api.metadata import JOB_NAME_LABEL, MODEL_DEPLOYMENT_LABEL

INDEXED_LABELS = (MODEL_DEPLOYMENT_LABEL, JOB_NAME_LABEL)
Key = tuple[str, str]


def _resource_version(obj: dict[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


def _owner_uids(obj: dict[str, Any]) -> set[str]:
    return {ref["uid"] for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("uid")}


class Store:
    """Objects by kind and (namespace, name); fed by watch events and by the initial listing.
    Cluster-scoped objects (Nodes) are kept under the namespace ""."""

    def __init__(self) -> None:
        # kind -> namespace -> name -> object
        self._objects: dict[str, dict[str, dict[str, dict[str, Any]]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        self._index: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
        # (kind, namespace, owner uid) -> names of the objects it owns
        self._owned: dict[tuple[str, str, str], set[str]] = defaultdict(set)

    def upsert(self, kind: str, obj: dict[str, Any]) -> bool:
        """Stores `obj` unless a newer version is already there; True when stored."""
        namespace, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
        objects = self._objects[kind][namespace]
        old = objects.get(name)
        if old is not None:
            if _resource_version(old) > _resource_version(obj):
                return False
            self._unindex(kind, old)
        objects[name] = obj
        for label in INDEXED_LABELS:
            if value := (obj["metadata"].get("labels") or {}).get(label):
                self._index[(kind, namespace, label, value)].add(name)
        for uid in _owner_uids(obj):
            self._owned[(kind, namespace, uid)].add(name)
        return True

    def remove(self, kind: str, namespace: str, name: str) -> None:
        if old := self._objects[kind][namespace].pop(name, None):
            self._unindex(kind, old)

    def _unindex(self, kind: str, obj: dict[str, Any]) -> None:
        namespace, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
        for label in INDEXED_LABELS:
            if value := (obj["metadata"].get("labels") or {}).get(label):
                names = self._index.get((kind, namespace, label, value))
                if names is not None:
                    names.discard(name)
                    if not names:
                        del self._index[(kind, namespace, label, value)]
        for uid in _owner_uids(obj):
            owned = self._owned.get((kind, namespace, uid))
            if owned is not None:
                owned.discard(name)
                if not owned:
                    del self._owned[(kind, namespace, uid)]

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects[kind][namespace].get(name)

    def by_label(self, kind: str, namespace: str, label: str, value: str) -> list[dict[str, Any]]:
        """Objects of `kind` in `namespace` whose `label` (an indexed one) equals `value`."""
        names = self._index.get((kind, namespace, label, value), set())
        objects = self._objects[kind][namespace]
        return [objects[n] for n in sorted(names) if n in objects]

    def owned_by(self, kind: str, namespace: str, uid: str) -> list[dict[str, Any]]:
        """Objects of `kind` in `namespace` with an ownerReference to `uid`."""
        names = self._owned.get((kind, namespace, uid), set())
        objects = self._objects[kind][namespace]
        return [objects[n] for n in sorted(names) if n in objects]

    def objects(self, kind: str) -> list[dict[str, Any]]:
        """Every stored object of `kind`, in every namespace."""
        return [obj for objects in self._objects[kind].values() for obj in objects.values()]

    def keys(self, kind: str) -> list[Key]:
        return [(ns, name) for ns, objects in self._objects[kind].items() for name in objects]
