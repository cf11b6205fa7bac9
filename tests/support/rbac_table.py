"""The permission tables of docs/rbac.md, parsed into rows the RBAC tests check against the real apiserver.

The document is the single source of truth for who may do what: the manifests in deploy/rbac/ must grant exactly its
"Allowed calls", nothing in "Denied on purpose", and the user roles as listed. Parsing the Markdown (instead of
keeping a second copy of the table in Python) means the page a reader trusts is the page the tests prove.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RBAC_DOC = REPO_ROOT / "docs" / "rbac.md"
SERVICE_NAMESPACE = "prepull-system"
CLUSTER_SCOPE = "cluster"


@dataclass(frozen=True)
class Permission:
    """One verb on one resource for one subject, where it applies.

    Attributes:
        subject: ServiceAccount name (in prepull-system) or, for user roles, the ClusterRole name.
        group: API group, "" for the core group.
        resource: Plural resource name, with "/subresource" when it is one (e.g. "imagepulljobs/status").
        verb: One Kubernetes verb.
        namespace: None when granted cluster-wide (ClusterRole + ClusterRoleBinding), else the namespace.
    """

    subject: str
    group: str
    resource: str
    verb: str
    namespace: str | None

    @property
    def base_resource(self) -> str:
        """The resource without its subresource."""
        return self.resource.partition("/")[0]

    @property
    def subresource(self) -> str:
        """The subresource ("" for the resource itself)."""
        return self.resource.partition("/")[2]


@dataclass(frozen=True)
class UserRole:
    """A row of "Roles for users": a ClusterRole, what it aggregates into, and what it grants."""

    cluster_role: str
    aggregated_into: tuple[str, ...]
    permissions: tuple[Permission, ...]


def _split_list(cell: str) -> list[str]:
    """Split a comma-separated table cell into trimmed, non-empty items."""
    return [item.strip() for item in cell.split(",") if item.strip()]


def _table_under(heading: str, text: str) -> list[dict[str, str]]:
    """The rows of the first Markdown table after `## <heading>`, as dicts keyed by the header cells.

    Raises:
        ValueError: when the heading or its table is missing, so a renamed section fails loudly.
    """
    lines = text.splitlines()
    try:
        start = lines.index(f"## {heading}")
    except ValueError as exc:
        raise ValueError(f"{RBAC_DOC} has no section '## {heading}'") from exc
    table = _first_table(lines[start + 1 :])
    if len(table) < 3:
        raise ValueError(f"section '## {heading}' of {RBAC_DOC} has no table")
    header = _cells(table[0])
    return [dict(zip(header, _cells(row), strict=True)) for row in table[2:]]


def _first_table(lines: list[str]) -> list[str]:
    """The contiguous block of `|`-lines that forms the first table in `lines`, stopping at the next heading."""
    block: list[str] = []
    for line in lines:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            block.append(line)
        elif block:
            break
    return block


def _cells(row: str) -> list[str]:
    """The trimmed cells of one Markdown table row."""
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _group(cell: str) -> str:
    """Table spelling of an API group to the API's: `core` is the empty group."""
    return "" if cell == "core" else cell


def _namespace(scope: str) -> str | None:
    """Table scope to a namespace: `cluster` means cluster-wide (None)."""
    return None if scope == CLUSTER_SCOPE else scope


def _service_rows(heading: str, text: str) -> list[Permission]:
    """Expand a service table (one row per resource, several verbs) into one Permission per verb."""
    return [
        Permission(
            subject=row["Service account"],
            group=_group(row["API group"]),
            resource=row["Resource"],
            verb=verb,
            namespace=_namespace(row["Scope"]),
        )
        for row in _table_under(heading, text)
        for verb in _split_list(row["Verbs"])
    ]


def read_doc() -> str:
    """The text of docs/rbac.md."""
    return RBAC_DOC.read_text()


def allowed_permissions(text: str | None = None) -> list[Permission]:
    """Every call the services may make ("Allowed calls")."""
    return _service_rows("Allowed calls", text or read_doc())


def denied_permissions(text: str | None = None) -> list[Permission]:
    """Calls the services must not be able to make ("Denied on purpose")."""
    return _service_rows("Denied on purpose", text or read_doc())


def user_roles(text: str | None = None) -> list[UserRole]:
    """The ClusterRoles for people and platform services ("Roles for users")."""
    roles = []
    for row in _table_under("Roles for users", text or read_doc()):
        name = row["ClusterRole"]
        aggregated = tuple(item for item in _split_list(row["Aggregated into"]) if not item.startswith("("))
        permissions = tuple(
            Permission(name, _group(row["API group"]), resource, verb, None)
            for resource in _split_list(row["Resource"])
            for verb in _split_list(row["Verbs"])
        )
        roles.append(UserRole(name, aggregated, permissions))
    return roles


def service_accounts(text: str | None = None) -> list[str]:
    """The ServiceAccount names of "Service accounts", in table order."""
    return [row["ServiceAccount"].strip("`") for row in _table_under("Service accounts", text or read_doc())]


def service_account_user(account: str) -> str:
    """The username Kubernetes gives a ServiceAccount of prepull-system."""
    return f"system:serviceaccount:{SERVICE_NAMESPACE}:{account}"
