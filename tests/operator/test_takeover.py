"""A tenant who may create ModelDeployments cannot take over other objects by naming one after
them: Berth writes nothing to an object it does not control, and says so on the resource."""

from __future__ import annotations

import pytest

from tests.cluster.kubectl import Kubectl
from tests.operator.helpers import condition, model_deployment, phase_is

pytestmark = pytest.mark.usefixtures("operator", "cache_volume")

ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "berth-rules"},
    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
}


def snapshot(kubectl: Kubectl, kind: str, name: str) -> dict:
    """What the owner of a foreign object cares about: its version, owners and content."""
    obj = kubectl.get(kind, name)
    meta = obj["metadata"]
    return {
        "resourceVersion": meta["resourceVersion"],
        "ownerReferences": meta.get("ownerReferences"),
        "labels": meta.get("labels"),
        "content": {k: v for k, v in obj.items() if k not in ("metadata", "status")},
    }


@pytest.mark.parametrize(
    ("md_name", "kind", "held_name", "create"),
    [
        ("web", "Service", "web", ["service", "clusterip", "web", "--tcp=80:8080"]),
        ("acct", "ServiceAccount", "berth-acct", ["serviceaccount", "berth-acct"]),
        ("rules", "Role", "berth-rules", None),
    ],
)
def test_a_name_held_by_a_foreign_object_is_a_conflict_and_nothing_is_written(
    kubectl: Kubectl, md_name: str, kind: str, held_name: str, create: list[str] | None
):
    if create:
        kubectl("create", *create)
    else:
        kubectl.apply(ROLE)
    before = snapshot(kubectl, kind.lower(), held_name)

    kubectl.apply(model_deployment(md_name))
    md = kubectl.wait_for("md", md_name, phase_is("Failed", reason="NameConflict"))
    message = condition(md, "Ready")["message"]
    assert f"{kind} {held_name} already exists" in message, message
    assert "rename the ModelDeployment" in message, message
    assert condition(md, "Stalled")["status"] == "True"

    # nothing of this resource was written: no workload, no identity bound to the foreign one
    assert snapshot(kubectl, kind.lower(), held_name) == before
    assert not kubectl.get("deployments")["items"]
    assert not kubectl.get("jobs")["items"]
    bindings = kubectl.get("rolebindings")["items"]
    assert not bindings, [b["metadata"]["name"] for b in bindings]

    kubectl("delete", "md", md_name, "--wait=true")
    gone = kubectl("get", "md", md_name, check=False)
    assert gone.returncode != 0
    assert snapshot(kubectl, kind.lower(), held_name) == before


def test_a_resource_created_again_under_its_name_adopts_its_own_children(kubectl: Kubectl):
    """Children orphaned by a deleted resource of the same name are Berth's: adopted, as a
    Deployment adopts orphaned ReplicaSets, not a conflict."""
    kubectl.apply(model_deployment("again"))
    kubectl.wait_for("md", "again", phase_is("Starting"))
    # orphan the children, as a delete whose garbage collection has not run yet would leave them
    kubectl("delete", "md", "again", "--cascade=orphan", "--wait=true")
    kubectl.apply(model_deployment("again"))
    md = kubectl.wait_for("md", "again", phase_is("Starting"))
    owners = kubectl.get("service", "again")["metadata"]["ownerReferences"]
    assert [o["uid"] for o in owners] == [md["metadata"]["uid"]]
