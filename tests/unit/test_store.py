"""The operator's store: newest version wins; label and owner indexes follow every change."""

from berth_operator.store import Store


def job(name: str, version: int, *owners: str) -> dict:
    refs = [{"kind": "ModelDeployment", "name": o, "uid": f"uid-{o}"} for o in owners]
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": str(version),
            "ownerReferences": refs,
        }
    }


def names(objects: list[dict]) -> list[str]:
    return [o["metadata"]["name"] for o in objects]


def test_owner_index_follows_new_owners_and_removals():
    store = Store()
    store.upsert("Job", job("a", 1, "x"))
    store.upsert("Job", job("b", 1, "x", "y"))
    assert names(store.owned_by("Job", "ns", "uid-x")) == ["a", "b"]
    store.upsert("Job", job("a", 2, "y"))  # x no longer owns a
    assert names(store.owned_by("Job", "ns", "uid-x")) == ["b"]
    assert names(store.owned_by("Job", "ns", "uid-y")) == ["a", "b"]
    assert not store.upsert("Job", job("a", 1, "x")), "an older version is ignored"
    assert names(store.owned_by("Job", "ns", "uid-x")) == ["b"]
    store.remove("Job", "ns", "b")
    assert store.owned_by("Job", "ns", "uid-x") == []
    assert store.owned_by("Deployment", "ns", "uid-y") == []
