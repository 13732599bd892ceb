"""Who runs approved calls: the requester unless every namespace a task touches opts into one account."""

from __future__ import annotations

import pytest
from bosun.api.identity_policies import policy_api_version
from bosun.api.models import UserRef
from bosun.config import OperatorConfig
from bosun.core import identity as ids
from bosun.core.identity import EXECUTION_SERVICE_ACCOUNT, execution_identity
from bosun.planner import PlanningContext
from bosun_tools.identity import Identity

CAROL = Identity("carol")
DEPLOYER = Identity(
    "system:serviceaccount:shop:deployer",
    ("system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"),
)


def choose(default: str = "", **namespaces: str | None) -> tuple[Identity, str | None, str | None]:
    """``namespaces``: name -> annotation value (None: not annotated); the first is the task's."""
    annotations = {
        ns.replace("_", "-"): ({} if value is None else {EXECUTION_SERVICE_ACCOUNT: value})
        for ns, value in namespaces.items()
    }
    choice = execution_identity(CAROL, next(iter(annotations)), default, annotations)
    return choice.identity, choice.service_account, choice.problem


def test_by_default_calls_run_as_the_requester() -> None:
    assert choose(shop=None) == (CAROL, None, None)


def test_the_operator_default_names_an_account_of_the_tasks_namespace() -> None:
    assert choose("deployer", shop=None) == (DEPLOYER, "deployer", None)


def test_a_namespace_annotation_overrides_the_default_either_way() -> None:
    assert choose(shop="deployer") == (DEPLOYER, "deployer", None)
    assert choose("deployer", shop="") == (CAROL, None, None)


def test_the_account_is_used_only_when_every_touched_namespace_names_it() -> None:
    assert choose(shop="deployer", shop_prod="deployer") == (DEPLOYER, "deployer", None)
    assert choose(shop="deployer", shop_prod=None) == (CAROL, None, None)
    assert choose(shop="deployer", shop_prod="other") == (CAROL, None, None)
    assert choose("deployer", shop=None, shop_prod="") == (CAROL, None, None)


def test_a_bad_annotation_stops_the_task_and_names_the_annotation() -> None:
    identity, account, problem = choose(shop="deployer", shop_prod="Deployer --as=admin")
    assert (identity, account) == (CAROL, None)
    assert problem is not None
    assert problem.startswith(
        f"namespace shop-prod {EXECUTION_SERVICE_ACCOUNT}='Deployer --as=admin' is not a ServiceAccount name"
    )
    assert f"kubectl annotate namespace shop-prod {EXECUTION_SERVICE_ACCOUNT}=<name> --overwrite" in problem


def test_the_operator_default_is_validated_at_start() -> None:
    assert OperatorConfig.from_env({}).execution_service_account == ""
    config = OperatorConfig.from_env({"BOSUN_EXECUTION_SERVICE_ACCOUNT": "bosun-executor"})
    assert config.execution_service_account == "bosun-executor"
    with pytest.raises(ValueError, match="BOSUN_EXECUTION_SERVICE_ACCOUNT='a_b' is not a ServiceAccount"):
        OperatorConfig.from_env({"BOSUN_EXECUTION_SERVICE_ACCOUNT": "a_b"})


def test_previews_and_checks_act_as_the_executor_investigation_as_the_requester() -> None:
    ctx = PlanningContext("scale web", "shop", ["shop"], CAROL)
    assert ctx.acting == CAROL
    ctx.executor = DEPLOYER
    assert (ctx.identity, ctx.acting) == (CAROL, DEPLOYER)


def test_bosun_never_acts_as_an_unbounded_identity() -> None:
    groups, protected = ids.DEFAULT_PRIVILEGED_GROUPS, ids.DEFAULT_PROTECTED_NAMESPACES

    def refusal(user: str, *member_of: str) -> str | None:
        return ids.impersonation_refusal(UserRef(user=user, groups=list(member_of)), groups, protected)

    assert refusal("alice", "sre", "system:authenticated") is None
    assert refusal("system:serviceaccount:argocd:argocd-application-controller") is None
    masters = refusal("admin", "system:masters")
    assert masters is not None
    assert "system:masters" in masters
    assert "RoleBindings or ClusterRoleBindings" in masters
    controller = refusal("system:serviceaccount:kube-system:generic-garbage-collector")
    assert controller is not None
    assert "kube-system" in controller
    assert refusal("system:kube-controller-manager") is not None
    assert refusal("system:node:worker-1", "system:nodes") is not None
    # An administrator may widen or narrow the lists.
    assert ids.impersonation_refusal(UserRef(user="admin", groups=["system:masters"]), (), ()) is None
    assert (
        ids.impersonation_refusal(UserRef(user="ops", groups=["breakglass"]), ("breakglass",), ()) is not None
    )


@pytest.mark.parametrize(
    ("served", "chosen"),
    [
        ({"v1", "v1beta1", "v1alpha1"}, "v1"),  # 1.36 with the older versions still switched on
        ({"v1beta1"}, "v1beta1"),  # 1.34, 1.35 with the feature gate
        ({"v1alpha1"}, "v1alpha1"),  # 1.32, 1.33 with the feature gate
        ({"v1alpha1", "v1beta1"}, "v1beta1"),
        (set(), None),  # no gate: nothing can stamp identities, and the operator stays unready
        ({"v2"}, None),
    ],
)
def test_the_identity_policies_are_read_through_the_newest_served_version(
    served: set[str], chosen: str | None
) -> None:
    assert policy_api_version(served) == chosen
