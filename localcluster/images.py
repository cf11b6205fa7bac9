"""Test images of a chosen size and layer count, built in pure Python and pushed over the registry HTTP API.

Tests, the demo and benchmarks need images whose size, layer count and digests they control, with no Docker
and no internet. `ImageBuilder.build` writes an OCI image (manifest, config, tar layers) into a blob directory;
the content is a pure function of the `ImageRecipe`, so the same recipe always gives the same digests (the
payload bytes come from SHAKE-256 of the seed, the tar headers carry fixed owners, modes and times). `push`
uploads the blobs (monolithic upload: POST, then PUT with the digest) and PUTs the manifest, with basic auth
when the registry wants it.

Layers are OCI `application/vnd.oci.image.layer.v1.tar` (uncompressed, the fastest to build and to unpack) or
`…tar+gzip`; containerd accepts both. The config carries `rootfs.diff_ids` and the host's platform, so
containerd's CRI pull matches the platform and unpacks the layers into its snapshotter.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import platform
import tarfile
import tempfile
import urllib.parse
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Literal, Protocol

from localcluster.registry import Credentials

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPES = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
}
PAYLOAD_BLOCK = 1 << 20
TAR_BLOCK = 512
FIXED_CREATED = "2000-01-01T00:00:00Z"
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}

Compression = Literal["none", "gzip"]


def host_architecture() -> str:
    """The OCI architecture name of this machine; containerd only unpacks images for its own platform."""
    machine = platform.machine().lower()
    return ARCHITECTURES.get(machine, machine)


@dataclass(frozen=True)
class ImageRecipe:
    """Everything that decides an image's bytes: same recipe, same digests.

    Attributes:
        name: Names the image (config label) and, unless `seed` is set, seeds its content.
        total_bytes: Payload bytes over all layers (each layer blob adds a few KiB of tar framing).
        layers: Number of layers; the payload is split evenly, the last layer takes the remainder.
        compression: "none" (uncompressed tar, fastest) or "gzip".
        seed: Content seed; layers with the same seed, index and size are identical across images.
        architecture: OCI architecture written in the config; defaults to this machine's.
    """

    name: str
    total_bytes: int
    layers: int = 1
    compression: Compression = "none"
    seed: str = ""
    architecture: str = ""

    def layer_payload_sizes(self) -> list[int]:
        """Payload bytes per layer."""
        if self.layers < 1 or self.total_bytes < 0:
            raise ValueError(f"need layers >= 1 and total_bytes >= 0, got {self.layers}, {self.total_bytes}")
        base = self.total_bytes // self.layers
        return [base] * (self.layers - 1) + [self.total_bytes - base * (self.layers - 1)]


@dataclass(frozen=True)
class Blob:
    """One content-addressed blob on disk with its OCI descriptor fields."""

    digest: str
    size: int
    media_type: str
    path: Path

    def descriptor(self) -> dict[str, object]:
        """The OCI descriptor that points at this blob."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class LayerBlob(Blob):
    """A layer blob and the digest of its uncompressed tar (the config's `diff_id`)."""

    diff_id: str = ""


@dataclass(frozen=True)
class BuiltImage:
    """An image whose blobs are on disk, ready to push."""

    recipe: ImageRecipe
    config: Blob
    layers: tuple[LayerBlob, ...]
    manifest: bytes

    @property
    def manifest_digest(self) -> str:
        """The digest a registry and containerd give this image's manifest (`name@sha256:…`)."""
        return sha256_digest(self.manifest)

    @property
    def image_id(self) -> str:
        """The config digest: containerd's CRI image id (`ImageStatus().image.id`)."""
        return self.config.digest

    @property
    def layer_digests(self) -> tuple[str, ...]:
        """Layer blob digests in manifest order (containerd's content store refs are `layer-<digest>`)."""
        return tuple(layer.digest for layer in self.layers)

    @property
    def blob_bytes(self) -> int:
        """Bytes a pull downloads: config and layer blobs."""
        return self.config.size + sum(layer.size for layer in self.layers)


@dataclass(frozen=True)
class PushedImage:
    """A built image as stored in one registry repository under one tag."""

    image: BuiltImage
    registry: str
    repository: str
    tag: str

    @property
    def reference(self) -> str:
        """`host:port/repository:tag`, as a pod spec or a pull job names it."""
        return self.reference_via(self.registry)

    @property
    def digest_reference(self) -> str:
        """`host:port/repository@sha256:…`, pinned to the manifest."""
        return f"{self.registry}/{self.repository}@{self.manifest_digest}"

    def reference_via(self, address: str) -> str:
        """The tag reference through another `host:port` that serves the same content (e.g. a fault proxy)."""
        return f"{address}/{self.repository}:{self.tag}"

    @property
    def manifest_digest(self) -> str:
        """See `BuiltImage.manifest_digest`."""
        return self.image.manifest_digest

    @property
    def image_id(self) -> str:
        """See `BuiltImage.image_id`."""
        return self.image.image_id

    @property
    def layer_digests(self) -> tuple[str, ...]:
        """See `BuiltImage.layer_digests`."""
        return self.image.layer_digests


class RegistryTarget(Protocol):
    """Where to push: a registry's `host:port` and its credentials, if it requires any."""

    @property
    def address(self) -> str: ...

    @property
    def credentials(self) -> Credentials | None: ...


class PushError(RuntimeError):
    """The registry refused a step of a push; the message names the request and the registry's answer."""


def sha256_digest(data: bytes) -> str:
    """`sha256:<hex>` of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ImageBuilder:
    """Builds images into a blob directory; a recipe already built by this builder is not written again.

    Args:
        work_dir: Directory for `blobs/sha256/<hex>` files and temporary files.
    """

    def __init__(self, work_dir: Path) -> None:
        self.blob_dir = work_dir / "blobs" / "sha256"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self._built: dict[ImageRecipe, BuiltImage] = {}

    def build(self, recipe: ImageRecipe) -> BuiltImage:
        """Write the layers, config and manifest of `recipe`; the result depends on the recipe alone."""
        if recipe not in self._built:
            self._built[recipe] = self._build(recipe)
        return self._built[recipe]

    def _build(self, recipe: ImageRecipe) -> BuiltImage:
        seed = recipe.seed or recipe.name
        layers = tuple(
            self._write_layer(recipe, seed, index, size) for index, size in enumerate(recipe.layer_payload_sizes())
        )
        config = self._store(_canonical_json(_config_document(recipe, layers)), CONFIG_MEDIA_TYPE)
        manifest = _canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "config": config.descriptor(),
                "layers": [layer.descriptor() for layer in layers],
            }
        )
        return BuiltImage(recipe=recipe, config=config, layers=layers, manifest=manifest)

    def build_and_push(
        self, recipe: ImageRecipe, registry: RegistryTarget, repository: str, tag: str = "latest"
    ) -> PushedImage:
        """Build `recipe` and push it as `repository:tag`."""
        return push(self.build(recipe), registry, repository, tag)

    def _write_layer(self, recipe: ImageRecipe, seed: str, index: int, payload_size: int) -> LayerBlob:
        """Stream one layer's tar (optionally gzipped) to disk, hashing the tar and the blob as they pass."""
        layer_seed = f"{seed}/{index}/{payload_size}"
        file_name = f"prepull/layer-{hashlib.sha256(layer_seed.encode()).hexdigest()[:16]}.bin"
        chunks = _tar_stream(file_name, payload_size, _payload(layer_seed, payload_size))
        with tempfile.NamedTemporaryFile(dir=self.blob_dir, delete=False, prefix=".tmp-") as raw:
            diff_id, digest = _write_tar(raw, chunks, recipe.compression)
        path = self._commit(Path(raw.name), digest)
        return LayerBlob(
            digest=digest,
            size=path.stat().st_size,
            media_type=LAYER_MEDIA_TYPES[recipe.compression],
            path=path,
            diff_id=diff_id,
        )

    def _store(self, data: bytes, media_type: str) -> Blob:
        """Store a small blob held in memory."""
        digest = sha256_digest(data)
        path = self.blob_dir / digest.removeprefix("sha256:")
        if not path.exists():
            path.write_bytes(data)
        return Blob(digest=digest, size=len(data), media_type=media_type, path=path)

    def _commit(self, temporary: Path, digest: str) -> Path:
        """Move a finished temporary blob to its content address (replacing an identical copy is harmless)."""
        path = self.blob_dir / digest.removeprefix("sha256:")
        os.replace(temporary, path)
        return path


class _HashingSink:
    """A write-only file object that hashes what it writes through to `target`."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self._hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        return self._target.write(data)

    def flush(self) -> None:
        self._target.flush()

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def _write_tar(out: IO[bytes], chunks: Iterator[bytes], compression: Compression) -> tuple[str, str]:
    """Write tar `chunks` to `out`, gzipped or not; return the tar's digest (diff_id) and the blob's digest."""
    sink = _HashingSink(out)
    tar_hash = hashlib.sha256()
    compressor = (
        gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=1) if compression == "gzip" else None
    )
    for chunk in chunks:
        tar_hash.update(chunk)
        (compressor or sink).write(chunk)
    if compressor is not None:
        compressor.close()
    return "sha256:" + tar_hash.hexdigest(), sink.digest()


def _payload(seed: str, size: int) -> Iterator[bytes]:
    """`size` pseudo-random bytes that depend only on `seed` (SHAKE-256 per 1 MiB block): incompressible, stable."""
    for offset in range(0, size, PAYLOAD_BLOCK):
        block_seed = f"{seed}/{offset // PAYLOAD_BLOCK}".encode()
        yield hashlib.shake_256(block_seed).digest(min(PAYLOAD_BLOCK, size - offset))


def _tar_stream(file_name: str, size: int, payload: Iterator[bytes]) -> Iterator[bytes]:
    """A tar with a `prepull/` directory and one regular file of `size` bytes, with fixed owner, mode and mtime."""
    yield _tar_header("prepull/", tarfile.DIRTYPE, 0, 0o755)
    yield _tar_header(file_name, tarfile.REGTYPE, size, 0o644)
    yield from payload
    yield b"\0" * (-size % TAR_BLOCK)
    yield b"\0" * (2 * TAR_BLOCK)


def _tar_header(name: str, kind: bytes, size: int, mode: int) -> bytes:
    """One deterministic tar header block (GNU format, root-owned, mtime fixed at 2000-01-01)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = mode
    info.mtime = 946684800
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _config_document(recipe: ImageRecipe, layers: tuple[LayerBlob, ...]) -> dict[str, object]:
    """The OCI image config: platform, a harmless default command, and the layers' diff_ids."""
    return {
        "architecture": recipe.architecture or host_architecture(),
        "os": "linux",
        "created": FIXED_CREATED,
        "config": {"Cmd": ["/bin/true"], "Labels": {"io.prepull.test-image": recipe.name}},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": FIXED_CREATED, "created_by": f"prepull image builder: layer {i}"} for i in range(len(layers))
        ],
    }


def _canonical_json(document: dict[str, object]) -> bytes:
    """Stable JSON bytes (sorted keys, no spaces): the digest depends on content, not dict order."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def push(image: BuiltImage, registry: RegistryTarget, repository: str, tag: str = "latest") -> PushedImage:
    """Upload the image's blobs (skipping those the repository has) and PUT its manifest under `tag`."""
    with _RegistrySession(registry) as session:
        for blob in (image.config, *image.layers):
            session.upload_blob(repository, blob)
        session.put_manifest(repository, tag, image)
    return PushedImage(image=image, registry=registry.address, repository=repository, tag=tag)


class _RegistrySession:
    """One keep-alive HTTP connection to a registry, with basic auth on every request when it has credentials."""

    def __init__(self, registry: RegistryTarget) -> None:
        host, port = registry.address.rsplit(":", 1)
        self._address = registry.address
        self._connection = http.client.HTTPConnection(host, int(port), timeout=300, blocksize=PAYLOAD_BLOCK)
        self._headers: dict[str, str] = {}
        if registry.credentials is not None:
            user_pass = f"{registry.credentials.username}:{registry.credentials.password}".encode()
            self._headers["Authorization"] = "Basic " + b64encode(user_pass).decode()

    def __enter__(self) -> _RegistrySession:
        return self

    def __exit__(self, *_: object) -> None:
        self._connection.close()

    def upload_blob(self, repository: str, blob: Blob) -> None:
        """Monolithic upload: POST opens an upload session, PUT `?digest=` sends the whole blob and commits it."""
        if self._request("HEAD", f"/v2/{repository}/blobs/{blob.digest}")[0] == 200:
            return
        location = self._expect(202, "POST", f"/v2/{repository}/blobs/uploads/").getheader("Location", "")
        with blob.path.open("rb") as content:
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
            self._expect(201, "PUT", _with_digest(location, blob.digest), body=content, headers=headers)

    def put_manifest(self, repository: str, tag: str, image: BuiltImage) -> None:
        """PUT the manifest and check the registry computed the digest we did."""
        headers = {"Content-Type": MANIFEST_MEDIA_TYPE}
        response = self._expect(201, "PUT", f"/v2/{repository}/manifests/{tag}", body=image.manifest, headers=headers)
        answered = response.getheader("Docker-Content-Digest")
        if answered != image.manifest_digest:
            raise PushError(f"{self._address} stored manifest as {answered}, expected {image.manifest_digest}")

    def _expect(
        self,
        status: int,
        method: str,
        path: str,
        body: bytes | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        """Send a request and raise `PushError` unless the registry answers `status`."""
        got, response, text = self._request(method, path, body, headers)
        if got != status:
            raise PushError(
                f"{method} {self._address}{path.split('?', maxsplit=1)[0]}: HTTP {got} (want {status}): {text[:300]!r}"
            )
        return response

    def _request(
        self, method: str, path: str, body: bytes | BinaryIO | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPResponse, bytes]:
        """One request on the kept-alive connection; the response body is read so the connection can be reused."""
        self._connection.request(method, path, body=body, headers=self._headers | (headers or {}))
        response = self._connection.getresponse()
        return response.status, response, response.read()


def _with_digest(location: str, digest: str) -> str:
    """The upload URL the registry returned (absolute or relative), as a path with `digest=` added to its query."""
    parts = urllib.parse.urlsplit(location)
    query = [*urllib.parse.parse_qsl(parts.query, keep_blank_values=True), ("digest", digest)]
    return urllib.parse.urlunsplit(("", "", parts.path, urllib.parse.urlencode(query), ""))
