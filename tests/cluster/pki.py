"""Certificates and keys for the local control plane: one CA, a serving cert, a service-account key,
and client certificates signed by that CA (a real node's kubelet and kube-proxy, the API server's
kubelet client)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

SERVING_DNS_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
SERVING_IPS = ("127.0.0.1", "10.96.0.1")


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _certificate(
    subject: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name | None,
    signing_key: ec.EllipticCurvePrivateKey,
    *,
    is_ca: bool,
    serving_ips: tuple[str, ...] = SERVING_IPS,
    organization: str | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, subject)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    name = x509.Name(attributes)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if organization is not None:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    elif not is_ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in SERVING_DNS_NAMES]
                + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in serving_ips]
            ),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


def write_pki(directory: Path, extra_ips: tuple[str, ...] = ()) -> dict[str, Path]:
    """Writes ca.crt, serving.crt/.key and sa.key/.pub into `directory`; returns their paths.
    `extra_ips` join the serving certificate's names (an address the API server advertises)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        name: directory / name
        for name in ("ca.crt", "ca.key", "serving.crt", "serving.key", "sa.key", "sa.pub")
    }
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("berth-test-ca", ca_key.public_key(), None, ca_key, is_ca=True)
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving_cert = _certificate(
        "kube-apiserver",
        serving_key.public_key(),
        ca_cert.subject,
        ca_key,
        is_ca=False,
        serving_ips=(*SERVING_IPS, *extra_ips),
    )
    sa_key = ec.generate_private_key(ec.SECP256R1())

    _write_key(paths["ca.key"], ca_key)
    paths["ca.crt"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(paths["serving.key"], serving_key)
    paths["serving.crt"].write_bytes(serving_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(paths["sa.key"], sa_key)
    paths["sa.pub"].write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return paths


def write_client_cert(directory: Path, name: str, user: str, group: str) -> tuple[Path, Path]:
    """A client certificate for `user` in `group`, signed by the CA in `directory`:
    writes NAME.crt and NAME.key there and returns their paths."""
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(
        user, key.public_key(), ca_cert.subject, ca_key, is_ca=False, organization=group
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
