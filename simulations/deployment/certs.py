"""TLS and SuperNode-authentication material for a Flower deployment, made in Python.

With the `cryptography` package (a Flower dependency) rather than `openssl` so that
a deployment needs no extra tools and the same code runs on every platform:
- a certificate authority (`ca.pem`), which SuperNodes and the `flwr` CLI trust;
- a server certificate signed by it (`server.pem`/`server.key`) for the SuperLink,
  valid for localhost, 127.0.0.1, ::1 and any extra host names or IP addresses;
- one ECDSA P-384 key pair per SuperNode in OpenSSH format, which is what
  `flower-supernode --auth-supernode-private-key` and `flwr supernode register` read.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365


@dataclass(frozen=True)
class DeployFiles:
    """Where `perennial deploy` keeps things under its directory."""

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "certs" / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.root / "certs" / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "certs" / "server.key"

    def node_key(self, i: int) -> Path:
        return self.root / "keys" / f"supernode-{i}"

    def node_public_key(self, i: int) -> Path:
        return self.root / "keys" / f"supernode-{i}.pub"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def flwr_home(self) -> Path:
        return self.root / "flwr-home"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def num_node_keys(self) -> int:
        n = 0
        while self.node_key(n).is_file() and self.node_public_key(n).is_file():
            n += 1
        return n


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, 0o600 if private else 0o644)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "perennial"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in ["localhost", "127.0.0.1", "::1", *hosts]:
        if host in seen:
            continue
        seen.add(host)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_tls(files: DeployFiles, hosts: list[str]) -> None:
    """A fresh CA and a server certificate it signed, valid for `hosts` and localhost."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = _name("perennial deployment CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA384())
    )
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0] if hosts else "localhost"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA384())
    )
    pem = serialization.Encoding.PEM
    _write(files.ca, ca.public_bytes(pem))
    _write(
        files.root / "certs" / "ca.key",
        ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        private=True,
    )
    _write(files.server_cert, cert.public_bytes(pem))
    _write(
        files.server_key,
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        private=True,
    )


def make_node_key(private_path: Path) -> Path:
    """An ECDSA P-384 SuperNode key pair in OpenSSH format; returns the `.pub` path."""
    key = ec.generate_private_key(ec.SECP384R1())
    _write(
        private_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
        private=True,
    )
    public = private_path.with_name(private_path.name + ".pub")
    _write(
        public,
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + b"\n",
    )
    return public


def make_all(files: DeployFiles, nodes: int, hosts: list[str]) -> None:
    """CA, server certificate and `nodes` SuperNode key pairs (old node keys removed)."""
    make_tls(files, hosts)
    for old in (files.root / "keys").glob("supernode-*"):
        old.unlink()
    for i in range(nodes):
        make_node_key(files.node_key(i))
