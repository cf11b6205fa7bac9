"""The generated gRPC stubs: they import, they match protos/, the drift check can fail, and wire names hold.

The drift check runs the real `scripts/gen_protos.py` as a subprocess. To prove it can fail, it runs a copy
of the script in a temporary tree (the script finds protos/ and services/shared/gen/ relative to itself),
so the real checkout is never modified.
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor

import services.shared.gen

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path("scripts") / "gen_protos.py"
GEN = Path("services") / "shared" / "gen"

# What protos/ must yield; a proto file that stops generating (or is never added) fails here.
EXPECTED_MODULES = {
    f"services.shared.gen.{name}{suffix}"
    for name in (
        "containerd.content",
        "prepull.v1.credentials",
        "prepull.v1.inventory",
        "prepull.v1.jobs",
        "prepull.v1.puller",
        "prepull.v1.types",
    )
    for suffix in ("_pb2", "_pb2_grpc")
}


def _generated_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(services.shared.gen.__path__, prefix="services.shared.gen.")
        if not info.ispkg
    )


def test_every_generated_module_imports() -> None:
    modules = _generated_modules()
    assert set(modules) >= EXPECTED_MODULES
    for name in modules:
        importlib.import_module(name)


def _run_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / SCRIPT), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_committed_stubs_match_protos() -> None:
    result = _run_check(ROOT)
    assert result.returncode == 0, result.stderr
    assert "generated stubs match protos/" in result.stdout


@pytest.fixture
def checkout_copy(tmp_path: Path) -> Path:
    """The script, protos/ and the generated stubs, copied into a throwaway tree."""
    (tmp_path / SCRIPT).parent.mkdir(parents=True)
    shutil.copy2(ROOT / SCRIPT, tmp_path / SCRIPT)
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copytree(ROOT / GEN, tmp_path / GEN, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_an_unmodified_copy_passes(checkout_copy: Path) -> None:
    """Control for the tests below: the copy itself is faithful."""
    assert _run_check(checkout_copy).returncode == 0


def test_check_fails_when_a_generated_file_is_edited(checkout_copy: Path) -> None:
    edited = checkout_copy / GEN / "prepull" / "v1" / "jobs_pb2.py"
    edited.write_text(edited.read_text() + "\n# hand edit\n")
    result = _run_check(checkout_copy)
    assert result.returncode == 1
    assert "prepull/v1/jobs_pb2.py" in result.stderr


def test_check_fails_when_a_proto_changes_without_regenerating(checkout_copy: Path) -> None:
    proto = checkout_copy / "protos" / "prepull" / "v1" / "types.proto"
    proto.write_text(proto.read_text() + "\nmessage AddedLater {\n  string field = 1;\n}\n")
    result = _run_check(checkout_copy)
    assert result.returncode == 1
    assert "prepull/v1/types_pb2.py" in result.stderr


def test_check_fails_when_a_generated_file_is_missing(checkout_copy: Path) -> None:
    (checkout_copy / GEN / "containerd" / "content_pb2_grpc.py").unlink()
    result = _run_check(checkout_copy)
    assert result.returncode == 1
    assert "containerd/content_pb2_grpc.py" in result.stderr


# --- Wire names that other programs depend on ------------------------------------------------------------


def _service(module: str, name: str) -> descriptor.ServiceDescriptor:
    file_descriptor: descriptor.FileDescriptor = importlib.import_module(module).DESCRIPTOR
    return file_descriptor.services_by_name[name]


def _fields(message: descriptor.Descriptor | None) -> dict[str, tuple[int, bool]]:
    """Field name → (number, repeated)."""
    assert message is not None
    return {f.name: (f.number, f.is_repeated) for f in message.fields}


def test_containerd_content_subset_matches_containerds_wire_protocol() -> None:
    """Package, service, method, messages and field numbers of containerd's content API (ListStatuses)."""
    content = _service("services.shared.gen.containerd.content_pb2", "Content")
    assert content.full_name == "containerd.services.content.v1.Content"
    method = content.methods_by_name["ListStatuses"]
    assert (method.input_type.full_name, method.output_type.full_name) == (
        "containerd.services.content.v1.ListStatusesRequest",
        "containerd.services.content.v1.ListStatusesResponse",
    )
    assert _fields(method.input_type) == {"filters": (1, True)}
    assert _fields(method.output_type) == {"statuses": (1, True)}
    status = method.output_type.fields_by_name["statuses"].message_type
    assert status is not None
    assert status.full_name == "containerd.services.content.v1.Status"
    assert _fields(status) == {
        "started_at": (1, False),
        "updated_at": (2, False),
        "ref": (3, False),
        "offset": (4, False),
        "total": (5, False),
        "expected": (6, False),
    }
    timestamp = status.fields_by_name["started_at"].message_type
    assert timestamp is not None
    assert timestamp.full_name == "google.protobuf.Timestamp"


@pytest.mark.parametrize(
    ("module", "service", "methods"),
    [
        pytest.param(
            "inventory_pb2",
            "NodeInventory",
            {"ListNodes": False, "WatchNodes": True, "ReportImages": False, "WhichNodes": False},
            id="inventory",
        ),
        pytest.param(
            "jobs_pb2",
            "Jobs",
            {"CreateJob": False, "GetJob": False, "ListJobs": False, "WatchJob": True, "DeleteJob": False},
            id="jobs",
        ),
        pytest.param("credentials_pb2", "Credentials", {"GetPullCredentials": False}, id="credentials"),
        pytest.param(
            "puller_pb2", "Puller", {"PullImage": True, "ImageStatus": False, "ListImages": False}, id="puller"
        ),
    ],
)
def test_prepull_services_have_their_methods(module: str, service: str, methods: dict[str, bool]) -> None:
    """Method names and which ones stream from the server (design §2); none streams from the client."""
    found = _service(f"services.shared.gen.prepull.v1.{module}", service)
    assert found.full_name == f"prepull.v1.{service}"
    assert {m.name: m.server_streaming for m in found.methods} == methods
    assert not any(m.client_streaming for m in found.methods)


def test_credentials_mirror_cri_auth_config_numbers() -> None:
    """A Credential maps onto CRI's AuthConfig field for field (server ↔ server_address)."""
    credential = importlib.import_module("services.shared.gen.prepull.v1.credentials_pb2").Credential.DESCRIPTOR
    auth_config = importlib.import_module("services.shared.gen.cri.api_pb2").AuthConfig.DESCRIPTOR
    ours = {name: number for name, (number, _) in _fields(credential).items() if name != "source"}
    theirs = {("server" if f.name == "server_address" else f.name): f.number for f in auth_config.fields}
    assert ours == theirs
    request = importlib.import_module("services.shared.gen.prepull.v1.credentials_pb2").GetPullCredentialsRequest
    assert "node" not in request.DESCRIPTOR.fields_by_name, "the node comes from the caller's token"
