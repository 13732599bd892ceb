"""Who a request is made as. A leaf module: pure decisions can name an identity without importing the
HTTP client."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """Who a request is made as: the user plus every group (without groups RBAC sees only
    ``system:authenticated``, which would silently drop group-granted rights)."""

    user: str
    groups: tuple[str, ...] = ()

    @property
    def impersonated_groups(self) -> tuple[str, ...]:
        """The groups to send when impersonating. None for a ServiceAccount: under constrained
        impersonation (beta, on by default in Kubernetes 1.36) a ServiceAccount is impersonated by name
        only, the API server adds exactly its groups itself, and naming groups is refused."""
        return () if self.user.startswith("system:serviceaccount:") else self.groups
