"""The AgentTask and ApprovalGrant resources as pydantic models: the single source of the CRD schemas.

``crdgen`` turns these models into the CRD manifests in ``crds/``, so every bound (string lengths, list
sizes, patterns) is enforced twice from one place: by the API server when a person applies YAML, and by the
operator when it builds a status. The bounds exist because an AgentTask lives in etcd and is re-sent to every
watcher on every write; ``bound_status`` is the last line that keeps a task well under 1 MiB whatever the
model, the tools or the users do.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from bosun_tools.output import cap_text
from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "bosun.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
PLAN_HASH = r"^sha256:[0-9a-f]{64}$"
STEP_ID = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
CONDITION_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$"
MODEL_NAME_MAX = 200

REQUEST_MAX = 8192
"""The request is duplicated into kopf's diff-base annotation (all annotations share 256 KiB)."""
MAX_PROPOSAL_STEPS = 20
MAX_HISTORY = 50
MAX_APPROVALS = 20
MAX_CHECKS = 20
MAX_APPROVERS = 8
"""Approvers one step record names (``approvedBy``), and so the most approvers a policy may require."""
MAX_PENDING_EVENTS = 32
EVENT_MESSAGE_CAP = 1000
# The *_CAP texts are cut by ``cap`` to at most that many UTF-8 bytes plus a truncation marker; the schema
# bounds them in characters (``maxLength`` = cap + ``MARKER_ROOM``), which a byte-capped text never exceeds
# because every character is at least one byte.
STEP_OUTPUT_CAP = 2048
STEP_ERROR_CAP = 1024
PREVIEW_CAP = 1024
DIFF_CAP = 4096
RATIONALE_CAP = 1024
"""UTF-8 bytes of a proposed step's rationale (the one rationale cap: whoever cuts it uses this)."""
SUMMARY_CAP = 8192
MESSAGE_CAP = 4096
APPROVAL_REASON_CAP = 1024
"""Characters of an approval record's reason (cut without a marker: the reason names itself first)."""
MARKER_ROOM = 64
"""Capped texts may exceed their cap by the truncation marker (``…[truncated N bytes]``)."""
STEP_ARGS_CAP = 8192
"""Bytes of canonical JSON one proposed call's arguments may take; larger calls are not proposed."""
PROPOSAL_ARGS_CAP = 64 * 1024
"""Bytes of arguments a whole proposal may carry (what is approved cannot be compacted later)."""
STATUS_BUDGET = 256 * 1024
"""The size ``bound_status`` keeps a task's status under (etcd's limit is 1.5 MiB for the whole object)."""
COLUMN_CAP = 80
"""Characters of a text shown in a ``kubectl get`` column (``one_line``): kubectl never cuts a column, so a
longer text would push every other column off the screen."""
SHORT_HASH_HEX = 12
"""Hex digits of a plan hash shown by ``kubectl get -o wide``: git's short length, unambiguous in one task."""
MAX_FOLLOW_UP_TURNS = 3
"""Earlier tasks a follow-up shows the model: the one it names and, through their own ``followUpOf``, the
ones before, newest first; older turns are left out (``bosun.core.follow_up``)."""
FOLLOW_UP_CONTEXT_CAP = 4000
"""Characters of those earlier turns given to the model, truncation marker included."""
MAX_TARGET_NAMESPACES = 20
MAX_POLICY_RULES = MAX_TARGET_NAMESPACES + 1
"""Destructive-approver requirements a task's approval policy can hold: at most one from each namespace it
answers to (its own and every target namespace; ``bosun.core.approval_policy.strictest``)."""
MAX_RULE_GROUPS = 8
"""Groups of one such requirement listed in ``status.approvalPolicy``; more are counted, not listed."""
GROUP_NAME_MAX = 253
POLICY_SOURCE_MAX = 128
POLICY_SUMMARY_CAP = 1024
POLICY_PROBLEM_CAP = 1024
FOLLOW_UP_EXCLUSIVE = (
    "spec.replayOf and spec.followUpOf are mutually exclusive: a replay proposes another task's recorded "
    "calls again, a follow-up plans anew with an earlier task as context; set one of them"
)

TaskPhase = Literal[
    "Pending",
    "Planning",
    "AwaitingApproval",
    "Executing",
    "Verifying",
    "Succeeded",
    "Denied",
    "Failed",
    "Cancelled",
    "Expired",
]
TERMINAL_PHASES: frozenset[str] = frozenset({"Succeeded", "Denied", "Failed", "Cancelled", "Expired"})
StepState = Literal["AwaitingApproval", "Approved", "Denied", "Executing", "Succeeded", "Failed", "Skipped"]
Decision = Literal["Approve", "Deny"]


class _Model(BaseModel):
    """camelCase on the wire (Kubernetes conventions), snake_case in Python; unknown keys are ignored so an
    older operator can read objects a newer one wrote."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def wire(self) -> dict[str, Any]:
        """The JSON the API server stores; absent optional fields are left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _text(max_length: int, description: str, min_length: int = 0) -> Any:
    return Field(min_length=min_length, max_length=max_length, description=description)


def _optional_text(max_length: int, description: str) -> Any:
    return Field(default=None, max_length=max_length, description=description)


FreeForm = Annotated[
    dict[str, Any],
    Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}),
]


# ----- AgentTask spec --------------------------------------------------------------------------------------


class AgentTaskSpec(_Model):
    """What a person asked for. Immutable after creation: a different request is a different task."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self == oldSelf",
                    "message": "spec is immutable after creation; create a new AgentTask for a new request",
                },
                {
                    "rule": "!has(self.replayOf) || !has(self.followUpOf)",
                    "message": FOLLOW_UP_EXCLUSIVE,
                },
            ]
        }
    )

    request: str = _text(
        REQUEST_MAX,
        "What you want done or answered, in plain language, e.g. "
        '"scale deployment web in shop to 5" or "why are the web pods not ready?".',
        min_length=1,
    )
    target_namespaces: list[Annotated[str, Field(max_length=63, pattern=DNS_LABEL)]] | None = Field(
        default=None,
        max_length=MAX_TARGET_NAMESPACES,
        description="Namespaces the task may read and change; calls outside them are refused before they "
        "are proposed. Default: the task's own namespace.",
    )
    model: str | None = Field(
        default=None,
        max_length=MODEL_NAME_MAX,
        pattern=MODEL_NAME,
        description="LiteLLM model name (provider/model) overriding the operator's BOSUN_MODEL "
        "for this task.",
    )
    max_iterations: int = Field(
        default=3,
        ge=1,
        le=10,
        description="How many plan-execute-verify rounds the task may take before it gives up (Failed).",
    )
    replay_of: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Name of an earlier AgentTask in this namespace whose approved, executed mutations are "
        "proposed again (exactly as recorded; a fresh approval is required).",
    )
    follow_up_of: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Name of an earlier, finished AgentTask in this namespace that this one follows up, as "
        "the next turn of a conversation: the model is given its request, how it ended, its answer, the "
        "changes it proposed or ran and its verification, and the same of the tasks it followed up in turn "
        f"(at most {MAX_FOLLOW_UP_TURNS} tasks, the oldest left out first; at most {FOLLOW_UP_CONTEXT_CAP} "
        "characters in all). The requester must be allowed to get that task and it must have finished, "
        "otherwise this task fails before anything is planned. Not with replayOf.",
    )
    cluster_scope: bool = Field(
        default=False,
        description="Allow changes to cluster-scoped objects (Namespaces named in targetNamespaces, Nodes, "
        "StorageClasses, PersistentVolumes, ...) and reads across namespaces. Needs the operator's "
        "BOSUN_ALLOW_CLUSTER_SCOPE=true; such steps are marked clusterScoped and approved as destructive. "
        "Bosun's own resources, RBAC, admission configuration and CRDs stay out of reach.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=31_536_000,
        description="Delete the task this many seconds after it finished (any terminal phase). "
        "Default: keep it.",
    )

    @model_validator(mode="after")
    def _replay_or_follow_up(self) -> AgentTaskSpec:
        """The CEL rule above, for objects built in Python (the API server enforces it on every write)."""
        if self.replay_of is not None and self.follow_up_of is not None:
            raise ValueError(FOLLOW_UP_EXCLUSIVE)
        return self


# ----- shared status parts ---------------------------------------------------------------------------------


class UserRef(_Model):
    """An authenticated Kubernetes identity as the API server reported it (never taken from client input)."""

    user: str = _text(512, "User name as authenticated by the API server.")
    groups: list[Annotated[str, Field(max_length=512)]] = Field(
        default_factory=list, max_length=64, description="Groups the API server reported for the user."
    )


class Condition(_Model):
    """A condition per the Kubernetes API conventions (metav1.Condition)."""

    type: str = Field(max_length=316, pattern=r"^[A-Za-z][A-Za-z0-9]*$", description="Condition type.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1, max_length=1024, pattern=CONDITION_REASON, description="CamelCase reason."
    )
    message: str = _text(32768, "Human-readable details, including what to do next.")
    last_transition_time: datetime = Field(description="When status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this condition was computed for."
    )


def _conditions_field(description: str) -> Any:
    return Field(
        default_factory=list,
        max_length=16,
        description=description,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


# ----- AgentTask status ------------------------------------------------------------------------------------


class ProposedStep(_Model):
    """One exact mutating call awaiting approval; what runs is exactly tool + args, nothing regenerated."""

    id: str = Field(max_length=63, pattern=STEP_ID, description="Step id within the proposal, e.g. s1.")
    tool: str = Field(max_length=100, pattern=r"^[a-z][a-z0-9_]*$", description="Tool name, e.g. k8s_scale.")
    args: FreeForm = Field(description="The exact arguments the tool is called with.")
    mutating: bool = Field(default=True, description="Whether the tool changes anything (operator registry).")
    destructive: bool = Field(
        default=False,
        description="Whether the change deletes or replaces data, or is cluster-scoped; destructive steps "
        "need approvers from the destructive approver groups.",
    )
    cluster_scoped: bool = Field(
        default=False,
        description="Whether the change reaches beyond one namespace (a cluster-scoped object, decided from "
        "API discovery); only tasks with spec.clusterScope, on an operator that allows it, propose such "
        "steps.",
    )
    idempotent: bool = Field(default=False, description="Whether running it twice equals running it once.")
    rationale: str = _text(RATIONALE_CAP + MARKER_ROOM, "Why the planner proposes this step.")
    preview: str | None = _optional_text(PREVIEW_CAP + MARKER_ROOM, "What the dry-run said about the call.")
    diff: str | None = _optional_text(
        DIFF_CAP + MARKER_ROOM, "Dry-run diff of the change (server-side dry-run where possible)."
    )
    preview_note: str | None = _optional_text(
        PREVIEW_CAP + MARKER_ROOM,
        "Why the preview may not show what this step will do: it was made before earlier steps of the same "
        "plan that touch the same object ran (a dry-run sees the cluster as it is now).",
    )


class Proposal(_Model):
    """The calls a person approves by their hash; a new revision voids grants for earlier ones."""

    revision: int = Field(ge=1, description="Increases with every new proposal of this task.")
    hash: str = Field(
        pattern=PLAN_HASH,
        description="sha256 over the task uid, revision and the exact calls (id, tool, args, in order); "
        "an ApprovalGrant must quote it as spec.planHash.",
    )
    created_at: datetime = Field(description="When the proposal was written.")
    summary: str = _text(SUMMARY_CAP + MARKER_ROOM, "The planner's description of the proposal.")
    steps: list[ProposedStep] = Field(max_length=MAX_PROPOSAL_STEPS, description="The calls, in order.")

    @computed_field(  # type: ignore[prop-decorator]
        description="The hash cut to its first hex digits, for the HASH column of `kubectl get -o wide` "
        "(the whole hash is 71 characters); a grant must quote the whole hash."
    )
    @property
    def short_hash(self) -> str:
        """Derived from ``hash`` on every write, so the column can never disagree with what is approved."""
        return self.hash[: len("sha256:") + SHORT_HASH_HEX]


class StepRecord(_Model):
    """One call in the task's history: investigations (read-only, run at once) and approved mutations."""

    id: str = Field(
        max_length=80,
        description="r<revision>-<step id> for proposed steps, p<iteration>-i<n> for planning reads.",
    )
    revision: int = Field(ge=0, description="Proposal revision (or planning round) the call belongs to.")
    step_id: str | None = Field(default=None, max_length=63, description="Proposal step id, if proposed.")
    tool: str = Field(max_length=100, description="Tool name.")
    args: FreeForm = Field(description="Arguments of the call.")
    mutating: bool = Field(description="Whether the tool changes anything.")
    idempotent: bool = Field(default=False, description="Whether re-running after a crash is safe.")
    state: StepState = Field(
        description="AwaitingApproval, Approved, Denied, Executing, Succeeded, Failed, Skipped."
    )
    approved_by: list[UserRef] | None = Field(
        default=None,
        max_length=MAX_APPROVERS,
        description="Who approved this step (from the grant's authenticated creator).",
    )
    grant: str | None = Field(
        default=None, max_length=253, description="ApprovalGrant that decided the step."
    )
    ran_as: UserRef | None = Field(
        default=None,
        description="Who the call was made as, recorded when it started: the requester, or the namespace's "
        "execution ServiceAccount. Planning's read-only calls always run as the requester.",
    )
    started_at: datetime | None = Field(default=None, description="When execution started.")
    finished_at: datetime | None = Field(default=None, description="When the call finished.")
    attempts: int = Field(default=0, ge=0, le=100, description="How many times the call was started.")
    output: str | None = _optional_text(
        STEP_OUTPUT_CAP + MARKER_ROOM, "Result text, capped with a truncation marker."
    )
    error: str | None = _optional_text(STEP_ERROR_CAP + MARKER_ROOM, "Why the call failed or was not run.")
    data: FreeForm | None = Field(default=None, description="Small structured facts from the tool (≤ 1 KiB).")


class VerificationCheck(_Model):
    name: str = _text(200, "What was checked, e.g. deployment shop/web rolled out.")
    passed: bool = Field(description="Whether the check held.")
    message: str = _text(MESSAGE_CAP + MARKER_ROOM, "What was observed.")


class Verification(_Model):
    """Objective checks first, then the model's short judgement of whether the request is satisfied."""

    revision: int = Field(ge=1, description="Proposal revision that was verified.")
    passed: bool = Field(description="Whether all checks and the judgement passed.")
    checks: list[VerificationCheck] = Field(
        default_factory=list, max_length=MAX_CHECKS, description="Checks."
    )
    judgement: str | None = _optional_text(
        MESSAGE_CAP + MARKER_ROOM, "The model's (or the objective checks') verdict."
    )
    checked_at: datetime = Field(description="When verification finished.")


class ApprovalRecord(_Model):
    """Every grant decision the operator considered for this task, accepted or not (who, when, why)."""

    grant: str = Field(max_length=253, description="ApprovalGrant name.")
    decision: Decision = Field(description="Approve or Deny.")
    accepted: bool = Field(description="Whether the grant applied to the proposal then current.")
    revision: int | None = Field(default=None, ge=1, description="Proposal revision it applied to.")
    approver: UserRef | None = Field(default=None, description="Who made the decision (authenticated).")
    steps: list[Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, max_length=MAX_PROPOSAL_STEPS, description="Step subset, if the grant named one."
    )
    reason: str = _text(APPROVAL_REASON_CAP, "Why the grant did or did not apply.")
    at: datetime = Field(description="When the operator decided.")
    created_at: datetime | None = Field(
        default=None, description="When the grant was created (its age is bounded by the approval policy)."
    )
    expires_at: datetime | None = Field(default=None, description="The grant's own spec.expiresAt.")


class DestructiveApprovers(_Model):
    """One requirement for approving a destructive step: its approver is in at least one of the groups."""

    groups: list[Annotated[str, Field(max_length=GROUP_NAME_MAX)]] = Field(
        max_length=MAX_RULE_GROUPS,
        description="The approver must be in at least one of these groups (as the API server reports the "
        f"approver's groups). At most {MAX_RULE_GROUPS} are listed; unlistedGroups counts the rest.",
    )
    source: str = _text(
        POLICY_SOURCE_MAX,
        "Who sets this requirement: `namespace NAME` (the Namespace's "
        "bosun.dev/destructive-approver-groups annotation) or BOSUN_DESTRUCTIVE_APPROVER_GROUPS (the "
        "operator's default).",
    )
    unlisted_groups: int | None = Field(
        default=None,
        ge=1,
        description="Groups of this requirement not listed in groups (beyond the first "
        f"{MAX_RULE_GROUPS}, or names longer than {GROUP_NAME_MAX} characters): an approver in one of them "
        "satisfies it too; the Namespace annotation has them all.",
    )


class ApprovalPolicyStatus(_Model):
    """The approval policy the current proposal is judged by, as the operator enforces it: the strictest of
    the operator's settings and the annotations of the task's namespace and of every target namespace."""

    four_eyes: bool = Field(description="Whether the requester's own approval is refused.")
    required_approvals: int = Field(
        ge=1,
        le=MAX_APPROVERS,
        description="Distinct approvers whose accepted approvals the proposal needs before it runs.",
    )
    destructive_approver_groups: list[DestructiveApprovers] = Field(
        default_factory=list,
        max_length=MAX_POLICY_RULES,
        description="What an approval of a destructive (or cluster-scoped) step needs, one entry per "
        "namespace (or the operator's setting) that demands it: the approver must satisfy every entry, each "
        "by being in at least one of its groups. Empty: any approver may approve destructive steps.",
    )
    annotation_approvals: bool = Field(
        description="Whether `kubectl annotate agenttask NAME approve=true` approves; when false only "
        "ApprovalGrants do."
    )
    max_grant_age_seconds: float = Field(
        ge=0,
        description="A grant approves nothing once it is older than this (from its creation); 0: no limit "
        "beyond the grant's own spec.expiresAt.",
    )
    problem: str | None = _optional_text(
        POLICY_PROBLEM_CAP + MARKER_ROOM,
        "Namespace annotations that do not parse: while this is set no grant approves anything (fail "
        "closed), until a cluster admin fixes them (kubectl annotate namespace ... --overwrite).",
    )
    summary: str = _text(
        POLICY_SUMMARY_CAP + MARKER_ROOM,
        'All of the above on one line, e.g. "four-eyes on, 2 distinct approvers, destructive steps need an '
        'approver in sre (namespace shop), annotation approvals accepted, grants valid 24h".',
    )


class Usage(_Model):
    calls: int = Field(default=0, ge=0, description="Model calls made for this task.")
    prompt_tokens: int = Field(default=0, ge=0, description="Prompt tokens used.")
    completion_tokens: int = Field(default=0, ge=0, description="Completion tokens used.")
    cost_usd: float = Field(default=0.0, ge=0, alias="costUSD", description="Estimated cost in US dollars.")
    model: str | None = Field(
        default=None,
        max_length=200,
        description="The LiteLLM model name (provider/model) the task's model calls were made with: "
        "spec.model, else the operator's BOSUN_MODEL; written with every usage update of a task planned "
        "or judged with a model (absent for the offline planner). Should the operator's model change while "
        "a task runs, it names the latest.",
    )


class PendingEvent(_Model):
    """An Event written into status with the change it reports, then posted: a process that dies between
    the write and the post posts it on its next look, and the name derived from ``id`` makes a second post
    of the same entry create nothing (AlreadyExists)."""

    id: str = Field(pattern=r"^[0-9a-f]{16}$", description="Makes the Event's name.")
    type: Literal["Normal", "Warning"] = Field(description="Event type.")
    reason: str = Field(max_length=128, pattern=CONDITION_REASON, description="Event reason.")
    message: str = _text(EVENT_MESSAGE_CAP + MARKER_ROOM, "Event message.")
    at: datetime = Field(description="When it happened.")


class AgentTaskStatus(_Model):
    """Written only by the operator (status subresource); it is the task's state machine and audit trail."""

    phase: TaskPhase | None = Field(default=None, description="Summary of the conditions for humans.")
    message: str | None = _optional_text(
        COLUMN_CAP,
        'One line for the MESSAGE column: what the task waits for ("awaiting 1 of 2 approvals") or why it '
        "ended; the conditions carry the whole message.",
    )
    request_preview: str | None = _optional_text(
        COLUMN_CAP, "spec.request on one line, cut for the REQUEST column of `kubectl get -o wide`."
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="Generation last reconciled; 0 (the schema's default) until the operator first wrote the "
        "status, so kstatus and GitOps tools read a task nobody has looked at yet as in progress.",
    )
    requester: UserRef | None = Field(
        default=None, description="Who created the task, stamped at admission by the API server."
    )
    iteration: int = Field(default=0, ge=0, le=10, description="Current plan-execute-verify round.")
    pending_steps: int = Field(default=0, ge=0, description="Proposed steps not yet run (printer column).")
    proposal: Proposal | None = Field(default=None, description="The current proposal awaiting approval.")
    approval_policy: ApprovalPolicyStatus | None = Field(
        default=None,
        description="The approval policy that applies to proposal: written with every proposal, and kept "
        "up to date while it awaits approval (Namespace annotations may change meanwhile; every grant is "
        "judged by the policy as it is then), so it tells what approving it takes without reading "
        "Namespaces. Kept with proposal once decided: the policy it was decided under.",
    )
    steps: list[StepRecord] = Field(
        default_factory=list, max_length=MAX_HISTORY, description="Bounded history of tool calls."
    )
    approvals: list[ApprovalRecord] = Field(
        default_factory=list, max_length=MAX_APPROVALS, description="Grant decisions considered."
    )
    verification: Verification | None = Field(default=None, description="Latest verification.")
    summary: str | None = _optional_text(SUMMARY_CAP + MARKER_ROOM, "The answer, or what was done.")
    usage: Usage = Field(default_factory=Usage, description="Model usage for this task.")
    started_at: datetime | None = Field(default=None, description="When the operator first saw the task.")
    finished_at: datetime | None = Field(default=None, description="When the task reached a final phase.")
    conditions: list[Condition] = _conditions_field(
        "Ready (True once Succeeded); Reconciling (True while Bosun works: Planning, Executing, Verifying); "
        "Stalled (True, with the reason, once the task ended without doing what was asked: Failed, Denied, "
        "Expired, Cancelled); Complete or Failed once finished, as a Job has them, for `kubectl wait`; and "
        "the story: Planned, Approved, Executed, Verified, ToolServerAvailable. docs/observability.md has "
        "the table per phase."
    )
    pending_events: list[PendingEvent] = Field(
        default_factory=list,
        max_length=MAX_PENDING_EVENTS,
        description="Events recorded with the last status write and not yet confirmed posted.",
    )


# ----- ApprovalGrant ---------------------------------------------------------------------------------------


class TaskRef(_Model):
    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="AgentTask name (same namespace)."
    )
    uid: str | None = Field(
        default=None,
        max_length=36,
        pattern=r"^[0-9a-f-]+$",
        description="AgentTask uid; optional because the plan hash already binds the task's uid.",
    )


class ApprovalGrantSpec(_Model):
    """One decision about one proposal. Immutable: a different decision is a new grant."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self == oldSelf",
                    "message": "an ApprovalGrant is immutable; create a new grant for a new decision",
                }
            ]
        }
    )

    task_ref: TaskRef = Field(description="The AgentTask this grant decides.")
    plan_hash: str = Field(
        pattern=PLAN_HASH,
        description="status.proposal.hash of the task; the grant approves exactly that proposal.",
    )
    decision: Decision = Field(description="Approve runs the steps; Deny ends the task Denied.")
    steps: list[Annotated[str, Field(max_length=63, pattern=STEP_ID)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PROPOSAL_STEPS,
        description="Approve only these step ids; the others are recorded as denied. Default: all.",
    )
    reason: str | None = _optional_text(1024, "Why; recorded in the task's history and Events.")
    expires_at: datetime | None = Field(default=None, description="The grant approves nothing after this.")


GrantState = Literal["Accepted", "Rejected", "Superseded"]


class ApprovalGrantStatus(_Model):
    """What the operator did with the grant; a rejected grant says why so the approver can fix it."""

    state: GrantState | None = Field(
        default=None,
        description="Accepted: the decision (an approval or a Deny; reason says which) was counted for the "
        "proposal it names. Rejected: it decided nothing, and reason and message say what to fix. "
        "Superseded: it came after the proposal was decided, or the task ended before the approval it "
        "counted took effect; nothing to fix.",
    )
    reason: str | None = Field(default=None, max_length=1024, pattern=CONDITION_REASON, description="Why.")
    message: str | None = _optional_text(MESSAGE_CAP, "Details and what to do next.")
    approver: UserRef | None = Field(default=None, description="Who created the grant (authenticated).")
    task_uid: str | None = Field(default=None, max_length=36, description="uid of the task decided.")
    revision: int | None = Field(default=None, ge=1, description="Proposal revision it applied to.")
    decided_at: datetime | None = Field(default=None, description="When the operator decided.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="Generation evaluated; 0 (the schema's default) until judged."
    )
    executed_at: datetime | None = Field(
        default=None,
        description="When the calls this grant approved were run: from then on it approves nothing, so an "
        "edited task status can never run an approved proposal a second time.",
    )
    conditions: list[Condition] = _conditions_field(
        "Accepted (True when the decision was counted; False, with the reason, when it was rejected or "
        "superseded); Stalled (True when rejected: the approver must act); Superseded (True when overtaken)."
    )


# ----- helpers ---------------------------------------------------------------------------------------------


def now() -> datetime:
    """Kubernetes timestamps have second precision; so do ours, so comparisons with the server's agree."""
    return datetime.now(UTC).replace(microsecond=0)


def cap(text: str | None, limit: int) -> str | None:
    """Cut to ``limit`` bytes with the tools' visible marker (``…[truncated N bytes]``)."""
    if text is None:
        return None
    return cap_text(text, limit)[0]


def one_line(text: str, limit: int = COLUMN_CAP) -> str:
    """``text`` with every run of blanks and line breaks made one space, cut to ``limit`` characters with
    "…": what a printer column can show without breaking the table."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
