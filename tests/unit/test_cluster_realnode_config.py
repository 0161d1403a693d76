"""The harness's real-node settings: certificates signed by the harness CA, and API server flags
that change only when a real node is asked for."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.cluster.binaries import Binaries
from tests.cluster.controlplane import ControlPlane
from tests.cluster.pki import write_client_cert, write_pki


def _plane(tmp_path: Path, **kwargs: str) -> ControlPlane:
    binaries = Binaries(**{name: Path(name) for name in Binaries.__dataclass_fields__})
    plane = ControlPlane(workdir=tmp_path, binaries=binaries, **kwargs)
    plane.ports = {"etcd": 1, "apiserver": 2}
    write_pki(plane.pki_dir)
    return plane


def test_a_client_certificate_names_user_and_group_and_is_signed_by_the_ca(tmp_path: Path) -> None:
    write_pki(tmp_path)
    cert_path, _ = write_client_cert(tmp_path, "kubelet", "system:node:n0", "system:nodes")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())

    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:n0"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.verify_directly_issued_by(ca)


def test_the_serving_certificate_names_an_advertised_address(tmp_path: Path) -> None:
    write_pki(tmp_path, extra_ips=("10.89.0.1",))
    cert = x509.load_pem_x509_certificate((tmp_path / "serving.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.89.0.1") in names.get_values_for_type(x509.IPAddress)


def test_without_a_real_node_the_api_server_stays_on_loopback(tmp_path: Path) -> None:
    args = _plane(tmp_path)._apiserver_args()
    assert "--bind-address=127.0.0.1" in args
    assert "--advertise-address=127.0.0.1" in args
    assert not [a for a in args if a.startswith("--kubelet-")]


def test_with_a_real_node_the_api_server_listens_on_its_address_and_dials_kubelets(
    tmp_path: Path,
) -> None:
    plane = _plane(tmp_path, address="10.89.0.1")
    args = plane._apiserver_args()
    assert "--bind-address=10.89.0.1" in args
    assert "--advertise-address=10.89.0.1" in args
    assert "--kubelet-preferred-address-types=InternalIP" in args
    assert f"--kubelet-client-certificate={plane.pki_dir / 'apiserver-kubelet-client.crt'}" in args
    assert plane.server == "https://10.89.0.1:2"
