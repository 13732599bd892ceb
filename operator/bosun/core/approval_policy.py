"""Who may approve what: the approval policy, from the operator's environment and Namespace annotations.

The policy (four-eyes, N distinct approvers, approver groups for destructive steps, annotation approvals,
maximum grant age) is operator configuration, overridable per namespace by annotations on the Namespace
object: only cluster admins edit namespaces, so whoever may edit tasks and grants in a namespace cannot
weaken it. A task is judged by the strictest policy of its own namespace and every target namespace, so a
task placed in a lax namespace cannot reach into a strict one. A namespace annotation that does not parse
approves nothing (fail closed) and says which annotation to fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bosun.api.models import (
    GROUP,
    GROUP_NAME_MAX,
    MAX_APPROVERS,
    MAX_POLICY_RULES,
    MAX_RULE_GROUPS,
    POLICY_PROBLEM_CAP,
    POLICY_SOURCE_MAX,
    POLICY_SUMMARY_CAP,
    ApprovalPolicyStatus,
    DestructiveApprovers,
    cap,
)
from bosun.core.words import names, parse_bool

FOUR_EYES = f"{GROUP}/four-eyes"
REQUIRED_APPROVALS = f"{GROUP}/required-approvals"
DESTRUCTIVE_APPROVER_GROUPS = f"{GROUP}/destructive-approver-groups"
ANNOTATION_APPROVALS = f"{GROUP}/annotation-approvals"
MAX_GRANT_AGE = f"{GROUP}/max-grant-age-seconds"

DEFAULT_MAX_GRANT_AGE = 24 * 3600.0


def _count(raw: str, where: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_APPROVERS:
        raise ValueError(f"{where}={raw!r} is not a whole number from 1 to {MAX_APPROVERS}; use e.g. 2")
    return value


def _seconds(raw: str, where: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"{where}={raw!r} is not a number of seconds (0 = no limit); use e.g. 3600")
    return value


@dataclass(frozen=True)
class GroupRule:
    """Destructive steps need an approver in one of ``groups``; ``source`` says who demands it."""

    groups: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class ApprovalPolicy:
    """Who may approve what. Defaults: four-eyes on, one approver, any approver for destructive steps,
    annotation approvals accepted, grants valid for a day after creation."""

    four_eyes: bool = True
    required_approvals: int = 1
    destructive_groups: tuple[GroupRule, ...] = ()
    annotation_approvals: bool = True
    max_grant_age_seconds: float = DEFAULT_MAX_GRANT_AGE
    """0: no limit beyond a grant's own ``expiresAt``."""
    problems: tuple[str, ...] = field(default=())
    """Namespace annotations that did not parse: while any is present, nothing is approved."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ApprovalPolicy:
        """Operator-wide defaults; a bad value stops the operator at start (it is the admin's typo)."""
        policy = cls()
        for variable, (attr, parse) in _ENV.items():
            if raw := env.get(variable, "").strip():
                policy = replace(policy, **{attr: parse(raw, variable)})
        if groups := names(env.get("BOSUN_DESTRUCTIVE_APPROVER_GROUPS", "")):
            rule = GroupRule(groups, "BOSUN_DESTRUCTIVE_APPROVER_GROUPS")
            policy = replace(policy, destructive_groups=(rule,))
        return policy

    def for_namespace(self, namespace: str, annotations: Mapping[str, str]) -> ApprovalPolicy:
        """This policy overridden by the Namespace object's ``bosun.dev/...`` annotations."""
        policy, problems = self, list(self.problems)
        for key, (attr, parse) in _ANNOTATIONS.items():
            if key in annotations:
                try:
                    policy = replace(
                        policy, **{attr: parse(annotations[key], f"namespace {namespace} {key}")}
                    )
                except ValueError as exc:
                    problems.append(str(exc))
        if DESTRUCTIVE_APPROVER_GROUPS in annotations:
            groups = names(annotations[DESTRUCTIVE_APPROVER_GROUPS])
            rules = (GroupRule(groups, f"namespace {namespace}"),) if groups else ()
            policy = replace(policy, destructive_groups=rules)
        return replace(policy, problems=tuple(problems))

    def describe(self) -> str:
        """The policy on one line, e.g. "four-eyes on, 2 distinct approvers, destructive steps need an
        approver in sre (namespace shop), annotation approvals accepted, grants valid 24h"."""
        approvers = (
            "1 approver" if self.required_approvals == 1 else f"{self.required_approvals} distinct approvers"
        )
        rules = " and ".join(f"in {' or '.join(r.groups)} ({r.source})" for r in self.destructive_groups)
        destructive = f"need an approver {rules}" if rules else "need no particular group"
        age = self.max_grant_age_seconds
        valid = f"grants valid {_duration(age)}" if age else "grants valid until their own expiresAt"
        text = (
            f"four-eyes {'on' if self.four_eyes else 'off'}, {approvers}, destructive steps {destructive}, "
            f"annotation approvals {'accepted' if self.annotation_approvals else 'refused'}, {valid}"
        )
        if self.problems:
            text += f"; nothing is approved until a cluster admin fixes: {'; '.join(self.problems)}"
        return " ".join(text.split())

    def as_status(self) -> ApprovalPolicyStatus:
        """What ``status.approvalPolicy`` says of this policy: all of it, within the schema's bounds (a
        requirement's groups beyond ``MAX_RULE_GROUPS`` are counted, not listed; texts are capped)."""
        rules = []
        for rule in self.destructive_groups[:MAX_POLICY_RULES]:
            listed = [g for g in rule.groups if len(g) <= GROUP_NAME_MAX][:MAX_RULE_GROUPS]
            rules.append(
                DestructiveApprovers(
                    groups=listed,
                    source=rule.source[:POLICY_SOURCE_MAX],
                    unlisted_groups=len(rule.groups) - len(listed) or None,
                )
            )
        return ApprovalPolicyStatus(
            four_eyes=self.four_eyes,
            required_approvals=self.required_approvals,
            destructive_approver_groups=rules,
            annotation_approvals=self.annotation_approvals,
            max_grant_age_seconds=self.max_grant_age_seconds,
            problem=cap(" ".join("; ".join(self.problems).split()), POLICY_PROBLEM_CAP) or None,
            summary=cap(self.describe(), POLICY_SUMMARY_CAP) or "",
        )


def _duration(seconds: float) -> str:
    """A grant age as people say it: 24h, 90m, 45s (whole hours or minutes when it is one)."""
    whole = float(seconds).is_integer()
    if whole and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if whole and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


_Parser = tuple[str, Callable[[str, str], Any]]
_ENV: dict[str, _Parser] = {
    "BOSUN_FOUR_EYES": ("four_eyes", parse_bool),
    "BOSUN_REQUIRED_APPROVALS": ("required_approvals", _count),
    "BOSUN_ANNOTATION_APPROVALS": ("annotation_approvals", parse_bool),
    "BOSUN_MAX_GRANT_AGE_SECONDS": ("max_grant_age_seconds", _seconds),
}
_ANNOTATIONS: dict[str, _Parser] = {
    FOUR_EYES: ("four_eyes", parse_bool),
    REQUIRED_APPROVALS: ("required_approvals", _count),
    ANNOTATION_APPROVALS: ("annotation_approvals", parse_bool),
    MAX_GRANT_AGE: ("max_grant_age_seconds", _seconds),
}


def strictest(policies: Iterable[ApprovalPolicy]) -> ApprovalPolicy:
    """One policy meeting every given one: a task answers to each namespace it touches."""
    found = list(policies)
    if not found:
        return ApprovalPolicy()
    ages = [p.max_grant_age_seconds for p in found if p.max_grant_age_seconds]
    rules: list[GroupRule] = []
    problems: list[str] = []
    for policy in found:
        rules += [r for r in policy.destructive_groups if r not in rules]
        problems += [p for p in policy.problems if p not in problems]
    return ApprovalPolicy(
        four_eyes=any(p.four_eyes for p in found),
        required_approvals=max(p.required_approvals for p in found),
        destructive_groups=tuple(rules),
        annotation_approvals=all(p.annotation_approvals for p in found),
        max_grant_age_seconds=min(ages) if ages else 0.0,
        problems=tuple(problems),
    )


DEFAULT_POLICY = ApprovalPolicy()
