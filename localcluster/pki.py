"""The local cluster's keys and certificates, made with `cryptography` (no openssl subprocesses).

One self-signed ECDSA CA signs the apiserver's serving certificate and the admin's client certificate
(`O=system:masters`, the group the apiserver always authorizes). A separate RSA key pair signs and verifies
ServiceAccount tokens; tests use its private key to sign expired or otherwise crafted tokens, and
`sign_jwt` builds such tokens by hand (no JWT library). An admin static token goes into the apiserver's
`--token-auth-file`.

Everything is written once into the PKI directory and reused on restart: the same files mean the same
issuer keys, so tokens and kubeconfigs issued before a restart stay valid after it. Private keys and the
token file are mode 0600.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ADMIN_USER = "admin"
ADMIN_GROUP = "system:masters"
# A local cluster may run for a long demo; certificates outlive any realistic session.
CERT_LIFETIME = datetime.timedelta(days=365)
SERVING_DNS_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
# 10.0.0.1 is the `kubernetes` Service address in --service-cluster-ip-range=10.0.0.0/24.
SERVING_IPS = ("127.0.0.1", "10.0.0.1")

SigningKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class ClusterPki:
    """Paths of the PKI files in one directory; `ensure_pki` creates them."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def apiserver_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def apiserver_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.directory / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.directory / "admin.key"

    @property
    def service_account_key(self) -> Path:
        """The ServiceAccount token signing key (RSA, PKCS#8 PEM)."""
        return self.directory / "sa.key"

    @property
    def service_account_public_key(self) -> Path:
        return self.directory / "sa.pub"

    @property
    def token_file(self) -> Path:
        """The apiserver's `--token-auth-file` (CSV: token,user,uid,"groups")."""
        return self.directory / "tokens.csv"

    def files(self) -> tuple[Path, ...]:
        return (
            self.ca_cert,
            self.ca_key,
            self.apiserver_cert,
            self.apiserver_key,
            self.admin_cert,
            self.admin_key,
            self.service_account_key,
            self.service_account_public_key,
            self.token_file,
        )

    def admin_token(self) -> str:
        """The admin static token, read back from the token file (never kept in state files or logs)."""
        first_line = self.token_file.read_text().splitlines()[0]
        return first_line.split(",", 1)[0]


def ensure_pki(directory: Path) -> ClusterPki:
    """Create the CA, certificates, SA key pair and admin token in `directory` unless all already exist."""
    pki = ClusterPki(directory)
    if all(path.exists() for path in pki.files()):
        return pki
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(common_name="prepull-localcluster-ca")
    ca_cert = _issue(subject=ca_name, public_key=ca_key.public_key(), ca_name=ca_name, ca_key=ca_key, is_ca=True)
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.ca_cert, ca_cert)
    _write_leaf(
        pki.apiserver_cert, pki.apiserver_key, ca_name, ca_key, _name(common_name="kube-apiserver"), serving=True
    )
    admin = _name(common_name=ADMIN_USER, organization=ADMIN_GROUP)
    _write_leaf(pki.admin_cert, pki.admin_key, ca_name, ca_key, admin, serving=False)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.service_account_key, sa_key)
    pki.service_account_public_key.write_bytes(_public_pem(sa_key))
    write_private_file(
        pki.token_file, f'{secrets.token_urlsafe(32)},{ADMIN_USER},{ADMIN_USER},"{ADMIN_GROUP}"\n'.encode()
    )
    return pki


def load_signing_key(path: Path) -> SigningKey:
    """Load an RSA or EC private key from a PEM file (e.g. the ServiceAccount signing key)."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise TypeError(f"{path}: expected an RSA or EC private key")
    return key


def key_id(key: SigningKey) -> str:
    """The `kid` the apiserver puts in tokens it signs: base64url(SHA-256(DER public key)), unpadded."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64url(hashlib.sha256(der).digest())


def sign_jwt(key: SigningKey, claims: Mapping[str, object], *, kid: str | None = None) -> str:
    """A compact JWS over `claims`, RS256 for RSA keys and ES256 for P-256 keys.

    Used to craft tokens the apiserver must reject (another key, expired) or accept (the real key).
    """
    alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    header: dict[str, str] = {"alg": alg, "typ": "JWT"} | ({"kid": kid} if kid else {})
    signing_input = f"{_b64url(_json(header))}.{_b64url(_json(claims))}".encode()
    return f"{signing_input.decode()}.{_b64url(_signature(key, signing_input))}"


def _signature(key: SigningKey, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _json(value: Mapping[str, object]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _name(*, common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization else []
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_leaf(
    cert_path: Path,
    key_path: Path,
    ca_name: x509.Name,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    *,
    serving: bool,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(subject=subject, public_key=key.public_key(), ca_name=ca_name, ca_key=ca_key, serving=serving)
    _write_key(key_path, key)
    _write_cert(cert_path, cert)


def _issue(
    *,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    ca_name: x509.Name,
    ca_key: ec.EllipticCurvePrivateKey,
    is_ca: bool = False,
    serving: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(_key_usage(is_ca=is_ca), critical=True)
    )
    if not is_ca:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if serving else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if serving:
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in SERVING_DNS_NAMES]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVING_IPS]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _key_usage(*, is_ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not is_ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_key(path: Path, key: SigningKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_private_file(path, pem)


def _public_pem(key: SigningKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_private_file(path: Path, data: bytes) -> None:
    """Write a secret file created with mode 0600, so it is never readable by others even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
