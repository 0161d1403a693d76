"""One pod on the local node: volumes as directories, env resolved, a bound token, its
containers run and reported in the pod's status."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.cluster import ControlPlane
from tests.nodeagent.api import ApiError, KubeApi
from tests.nodeagent.containers import ContainerProcess, expand, now
from tests.nodeagent.images import LocalImage

STEP_SECONDS = 0.25


class PodNotStartable(Exception):
    """The pod cannot start yet (a missing Secret, an unbound claim); `reason` is the kubelet's."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class PodRunner(threading.Thread):
    """Runs a pod's containers until the pod is deleted or, for Never/OnFailure, finishes."""

    def __init__(
        self,
        pod: dict[str, Any],
        plane: ControlPlane,
        api: KubeApi,
        images: dict[str, LocalImage],
        workdir: Path,
        claims_dir: Path,
        pod_ip: str,
    ) -> None:
        super().__init__(daemon=True, name=f"pod-{pod['metadata']['name']}")
        self.pod, self.plane, self.api, self.images = pod, plane, api, images
        self.meta, self.spec = pod["metadata"], pod["spec"]
        self.workdir, self.claims_dir, self.pod_ip = workdir, claims_dir, pod_ip
        self.containers: list[ContainerProcess] = []
        self.stopping = threading.Event()
        self.grace = 5.0
        self.waiting: dict[str, str] | None = None
        self.started_time = now()
        self._last_status: dict[str, Any] | None = None

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.meta['namespace']}/pods/{self.meta['name']}"

    # ---- what a container sees -----------------------------------------------------------

    def _read(self, kind: str, name: str) -> dict[str, str]:
        """A Secret's or ConfigMap's data, decoded."""
        plural = "secrets" if kind == "Secret" else "configmaps"
        try:
            obj = self.api.get(f"/api/v1/namespaces/{self.meta['namespace']}/{plural}/{name}")
        except ApiError as error:
            if error.status == 404:
                raise PodNotStartable(
                    "CreateContainerConfigError", f'{kind.lower()} "{name}" not found'
                ) from None
            raise
        if kind == "Secret":
            return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        return dict(obj.get("data") or {})

    def _field(self, path: str) -> str:
        values = {
            "metadata.name": self.meta["name"],
            "metadata.namespace": self.meta["namespace"],
            "metadata.uid": self.meta["uid"],
            "spec.nodeName": self.spec.get("nodeName", ""),
            "spec.serviceAccountName": self.spec.get("serviceAccountName", "default"),
            "status.podIP": self.pod_ip,
            "status.hostIP": "127.0.0.1",
        }
        if path.startswith("metadata.labels['"):
            return (self.meta.get("labels") or {}).get(path[17:-2], "")
        return values[path]

    def _volumes(self) -> dict[str, Path]:
        """Each volume as a directory: a claim's is shared by every pod that mounts it."""
        found: dict[str, Path] = {}
        for volume in self.spec.get("volumes", []):
            name = volume["name"]
            if claim := volume.get("persistentVolumeClaim"):
                self._check_bound(claim["claimName"])
                found[name] = self.claims_dir / f"{self.meta['namespace']}-{claim['claimName']}"
            elif "emptyDir" in volume:
                found[name] = self.workdir / "volumes" / name
            elif "secret" in volume or "configMap" in volume:
                kind = "Secret" if "secret" in volume else "ConfigMap"
                source = volume.get("secret") or volume.get("configMap")
                ref = source.get("secretName") or source.get("name")
                found[name] = self.workdir / "volumes" / name
                found[name].mkdir(parents=True, exist_ok=True)
                for key, value in self._read(kind, ref).items():
                    (found[name] / key).write_text(value)
            else:
                continue  # projected service-account tokens: the pod gets a kubeconfig instead
            found[name].mkdir(parents=True, exist_ok=True)
        return found

    def _check_bound(self, claim: str) -> None:
        try:
            pvc = self.api.get(
                f"/api/v1/namespaces/{self.meta['namespace']}/persistentvolumeclaims/{claim}"
            )
        except ApiError as error:
            if error.status == 404:
                raise PodNotStartable(
                    "ContainerCreating", f'persistentvolumeclaim "{claim}" not found'
                ) from None
            raise
        if (pvc.get("status") or {}).get("phase") != "Bound":
            raise PodNotStartable("ContainerCreating", f'persistentvolumeclaim "{claim}" not bound')

    def _kubeconfig(self) -> Path:
        """A kubeconfig with a token bound to this pod, from the TokenRequest API."""
        account = self.spec.get("serviceAccountName") or "default"
        token = self.plane.kubectl(
            "create",
            "token",
            account,
            "-n",
            self.meta["namespace"],
            "--bound-object-kind=Pod",
            f"--bound-object-name={self.meta['name']}",
            f"--bound-object-uid={self.meta['uid']}",
            "--duration=3600s",
        ).stdout.strip()
        return self.plane.write_kubeconfig(
            self.workdir / "kubeconfig", token, self.meta["namespace"]
        )

    def _env(self, container: dict[str, Any], image: LocalImage, mounts: dict[str, Path]) -> dict:
        declared: dict[str, str] = {}
        for item in container.get("env", []):
            if "value" in item:
                declared[item["name"]] = expand(item["value"], declared)
            elif ref := item.get("valueFrom", {}).get("secretKeyRef"):
                declared[item["name"]] = self._key(self._read("Secret", ref["name"]), ref, "secret")
            elif ref := item.get("valueFrom", {}).get("configMapKeyRef"):
                value = self._key(self._read("ConfigMap", ref["name"]), ref, "configmap")
                declared[item["name"]] = value
            elif ref := item.get("valueFrom", {}).get("fieldRef"):
                declared[item["name"]] = self._field(ref["fieldPath"])
        # Processes share the host's file system: the pod's paths under a mount are rewritten to
        # the mount's directory (the agent's own values, such as PATH, are host paths already).
        for key, value in declared.items():
            for mount_path, host in sorted(mounts.items(), key=lambda m: -len(m[0])):
                if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                    declared[key] = str(host) + value[len(mount_path) :]
                    break
        env: dict[str, str] = {
            "PATH": f"{image.bin_dir}{os.pathsep}/usr/bin:/bin",
            "HOSTNAME": self.meta["name"],
            **image.env,
            **declared,
        }
        if self.spec.get("automountServiceAccountToken", True):
            env["KUBECONFIG"] = str(self._kubeconfig())
        # ... and the host's network: each pod has its own loopback address to listen on.
        env["BERTH_HOST"] = self.pod_ip
        env["BERTH_TERMINATION_LOG"] = str(self.workdir / f"{container['name']}.termination-log")
        return env

    @staticmethod
    def _key(data: dict[str, str], ref: dict[str, Any], kind: str) -> str:
        if ref["key"] not in data:
            if ref.get("optional"):
                return ""
            raise PodNotStartable(
                "CreateContainerConfigError",
                f"couldn't find key {ref['key']} in {kind} {ref['name']}",
            )
        return data[ref["key"]]

    def _prepare(self) -> None:
        if self.spec.get("initContainers"):
            raise PodNotStartable(
                "CreateContainerConfigError", "the local node agent runs no initContainers"
            )
        volumes = self._volumes()
        for container in self.spec["containers"]:
            image = self.images.get(container["image"])
            if image is None:
                raise PodNotStartable(
                    "ErrImageNeverPull", f"image {container['image']} has no local environment"
                )
            mounts = {
                m["mountPath"]: volumes[m["name"]] / m.get("subPath", "")
                for m in container.get("volumeMounts", [])
                if m["name"] in volumes
            }
            self.containers.append(
                ContainerProcess(
                    spec=container,
                    image=image,
                    env=self._env(container, image, mounts),
                    workdir=self.workdir,
                    pod_ip=self.pod_ip,
                    restart_policy=self.spec.get("restartPolicy", "Always"),
                )
            )

    # ---- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        while not self.stopping.is_set() and not self.containers:
            try:
                self._prepare()
                self.waiting = None
                break
            except PodNotStartable as error:
                self.waiting = {"reason": error.reason, "message": error.message}
            except (ApiError, OSError, subprocess.CalledProcessError) as error:
                # the API server may be restarting: try again
                self.waiting = {"reason": "ContainerCreating", "message": str(error)[:500]}
            self.containers = []
            self._report()
            self.stopping.wait(2)
        while not self.stopping.is_set():
            clock = time.monotonic()
            for container in self.containers:
                container.step(clock)
            reported = self._report()
            if reported and all(c.finished for c in self.containers):
                return
            self.stopping.wait(STEP_SECONDS)
        for container in self.containers:
            container.stop(self.grace)

    def terminate(self, grace: float) -> None:
        self.grace = min(grace, 10.0)
        self.stopping.set()

    # ---- status ----------------------------------------------------------------------------

    def _phase(self) -> str:
        if self.containers and all(c.finished for c in self.containers):
            codes = [c.state["terminated"]["exitCode"] for c in self.containers]
            return "Failed" if any(codes) else "Succeeded"
        if any(c.popen is not None or c.restarts or c.finished for c in self.containers):
            return "Running"
        return "Pending"

    def status(self) -> dict[str, Any]:
        ready = bool(self.containers) and all(c.ready for c in self.containers)
        container_statuses = [c.status() for c in self.containers] or [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"waiting": self.waiting or {"reason": "ContainerCreating"}},
            }
            for c in self.spec["containers"]
        ]

        def condition(kind: str, value: bool) -> dict[str, str]:
            return {"type": kind, "status": "True" if value else "False"}

        return {
            "phase": self._phase(),
            "hostIP": "127.0.0.1",
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.started_time,
            "conditions": [
                condition("PodScheduled", True),
                condition("Initialized", True),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ],
            "containerStatuses": container_statuses,
        }

    def _report(self) -> bool:
        """Writes the status when it changed; False while the API server cannot take it."""
        status = self.status()
        if status == self._last_status:
            return True
        stamped = json.loads(json.dumps(status))
        for item in stamped["conditions"]:
            item["lastTransitionTime"] = now()
        try:
            self.api.patch(self.path + "/status", {"status": stamped})
        except (ApiError, OSError):
            return False  # the API server may be restarting: the next step reports again
        self._last_status = status
        return True
