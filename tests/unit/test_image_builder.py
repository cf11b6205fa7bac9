"""The image builder makes the same bytes from the same recipe, and images containerd can unpack."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from localcluster.images import (
    CONFIG_MEDIA_TYPE,
    LAYER_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPE,
    BuiltImage,
    ImageBuilder,
    ImageRecipe,
)


def build(tmp_path: Path, folder: str, recipe: ImageRecipe) -> BuiltImage:
    return ImageBuilder(tmp_path / folder).build(recipe)


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_same_recipe_gives_same_digests(tmp_path: Path, compression: str) -> None:
    recipe = ImageRecipe("demo/app", total_bytes=3 << 20, layers=3, compression=compression)  # type: ignore[arg-type]

    first = build(tmp_path, "one", recipe)
    second = build(tmp_path, "two", recipe)

    assert first.manifest_digest == second.manifest_digest
    assert first.layer_digests == second.layer_digests
    assert first.image_id == second.image_id
    assert first.manifest == second.manifest


def test_different_seed_or_size_gives_different_layers(tmp_path: Path) -> None:
    base = build(tmp_path, "a", ImageRecipe("demo/app", total_bytes=1 << 20, layers=2))
    reseeded = build(tmp_path, "b", ImageRecipe("demo/app", total_bytes=1 << 20, layers=2, seed="other"))
    resized = build(tmp_path, "c", ImageRecipe("demo/app", total_bytes=(1 << 20) + 1, layers=2))

    assert not set(base.layer_digests) & set(reseeded.layer_digests)
    assert base.layer_digests[1] != resized.layer_digests[1]
    assert len({base.manifest_digest, reseeded.manifest_digest, resized.manifest_digest}) == 3


def test_shared_seed_shares_layers(tmp_path: Path) -> None:
    one = build(tmp_path, "a", ImageRecipe("one", total_bytes=1 << 20, layers=2, seed="base"))
    two = build(tmp_path, "b", ImageRecipe("two", total_bytes=1 << 20, layers=2, seed="base"))

    assert one.layer_digests == two.layer_digests
    assert one.image_id != two.image_id


def test_payload_is_split_across_layers(tmp_path: Path) -> None:
    image = build(tmp_path, "a", ImageRecipe("split", total_bytes=10_000_001, layers=3))

    payload_sizes = [_layer_file(layer.path.read_bytes()).size for layer in image.layers]

    assert payload_sizes == [3_333_333, 3_333_333, 3_333_335]
    assert image.blob_bytes > 10_000_001


def test_manifest_and_config_describe_the_blobs(tmp_path: Path) -> None:
    image = build(tmp_path, "a", ImageRecipe("described", total_bytes=100_000, layers=2, compression="gzip"))

    manifest = json.loads(image.manifest)
    config = json.loads(image.config.path.read_bytes())

    assert manifest["mediaType"] == MANIFEST_MEDIA_TYPE
    assert manifest["config"] == {"mediaType": CONFIG_MEDIA_TYPE, "digest": image.image_id, "size": image.config.size}
    assert [layer["digest"] for layer in manifest["layers"]] == list(image.layer_digests)
    assert {layer["mediaType"] for layer in manifest["layers"]} == {LAYER_MEDIA_TYPES["gzip"]}
    assert config["os"] == "linux"
    assert config["architecture"]
    assert config["rootfs"]["type"] == "layers"
    for layer, diff_id in zip(image.layers, config["rootfs"]["diff_ids"], strict=True):
        blob = layer.path.read_bytes()
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer.digest
        assert "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest() == diff_id


def test_layers_are_valid_tars_with_fixed_metadata(tmp_path: Path) -> None:
    image = build(tmp_path, "a", ImageRecipe("tarred/app", total_bytes=5000, layers=1))

    with tarfile.open(fileobj=io.BytesIO(image.layers[0].path.read_bytes())) as tar:
        members = tar.getmembers()
        content = tar.extractfile(members[1])
        assert content is not None
        data = content.read()

    assert members[0].name == "prepull"
    assert members[1].name.startswith("prepull/layer-")
    assert members[0].isdir()
    assert members[1].isfile()
    assert len(data) == 5000
    assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, 946684800)}
    assert image.layers[0].diff_id == image.layers[0].digest


def test_recipe_rejects_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="layers >= 1"):
        ImageRecipe("bad", total_bytes=10, layers=0).layer_payload_sizes()


def _layer_file(blob: bytes) -> tarfile.TarInfo:
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        return next(member for member in tar.getmembers() if member.isfile())
