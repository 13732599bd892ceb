"""What the operator core hands the planner and gets back.

Plain dataclasses, so the operator can build them from ``.status`` and write them back without the
planner's internals (LangGraph state, LiteLLM responses) leaking into the resource.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bosun_tools.identity import Identity
from bosun_tools.sealing import TaskRef

Outcome = Literal["answer", "proposal", "unsupported", "failed"]
Failure = Literal["model", "planning"]
"""Why planning failed: the model could not be used (fix its configuration), or the plan itself failed."""

MODEL_CALLS_PER_ITERATION = 6
"""A task makes at most maxIterations x 6 model calls in all: planning turns and verification judgements.

One budget for the whole task rather than one per pass, so ``maxIterations`` really bounds what a task can
spend: a pass that needs few turns leaves calls for later passes, and a looping model stops at the bound."""
_DEFAULT_ITERATIONS = 3


@dataclass(frozen=True)
class ModelSettings:
    """How to reach the model through LiteLLM; ``model`` uses LiteLLM's ``provider/name`` form."""

    model: str
    api_base: str | None = None
    api_key: str | None = None
    timeout: float = 60.0
    max_retries: int = 3
    retry_backoff: float = 1.0
    """Seconds before the first retry; doubled for each further one (a provider's Retry-After wins)."""
    max_turns: int = 8
    """Model calls allowed in one planning pass (also bounded by ``PlanningContext.model_calls_left``)."""


@dataclass
class PlanningContext:
    request: str
    namespace: str
    target_namespaces: list[str]
    identity: Identity
    iteration: int = 1
    max_iterations: int = _DEFAULT_ITERATIONS
    history: list[str] = field(default_factory=list)
    executor: Identity | None = None
    """Who will run approved changes when not the requester (a namespace's execution ServiceAccount)."""
    model_calls_left: int = _DEFAULT_ITERATIONS * MODEL_CALLS_PER_ITERATION
    """Model calls the task may still make: ``max_iterations * MODEL_CALLS_PER_ITERATION`` minus the calls
    in its status. Planning and the verification judge stop calling the model at zero. The default is the
    whole budget of a task with the default ``max_iterations``; the operator always sets it."""
    cluster_scope: bool = False
    """The task may change cluster-scoped objects: its spec asks (``clusterScope``) and the operator's
    configuration allows it. Also lets it read across namespaces."""
    follow_up: str | None = None
    """The earlier tasks this one follows up (``spec.followUpOf``), bounded text for the model: given with
    the request to planning and to the judge; the offline planner does not read it."""
    task_name: str | None = None
    task_uid: str | None = None
    """The AgentTask planned for (its namespace is ``namespace``). Previews of calls that write secret
    values keep them in a holding Secret owned by it; without both, such calls cannot be proposed."""

    @property
    def task(self) -> TaskRef | None:
        """The task as the tool server needs it to seal a preview's secret values."""
        if self.task_name is None or self.task_uid is None:
            return None
        return TaskRef(self.namespace, self.task_name, self.task_uid)

    @property
    def model_budget(self) -> str:
        """The formula behind ``model_calls_left``, for messages that say why a model call was not made."""
        total = self.max_iterations * MODEL_CALLS_PER_ITERATION
        return (
            f"maxIterations {self.max_iterations} x {MODEL_CALLS_PER_ITERATION} = {total} model calls "
            "for the whole task (planning turns and verification judgements)"
        )

    @property
    def acting(self) -> Identity:
        """The identity of dry-run previews and post-execution checks: only the one that executes the
        changes predicts and observes what they do. Read-only investigation stays the requester's."""
        return self.executor or self.identity


@dataclass(frozen=True)
class PlannedCall:
    """One mutating call the planner proposes; ``preview``/``diff`` come from the tool's dry-run."""

    id: str
    tool: str
    args: dict[str, Any]
    rationale: str
    preview: str | None = None
    diff: str | None = None
    preview_note: str | None = None
    """Why the preview may not show what this step will do: a server-side dry-run sees the cluster as it
    is now, not after the earlier steps of the same plan, so a step touching an object an earlier step
    touches says which ones (e.g. re-creating a claim that step s2 deletes)."""


@dataclass(frozen=True)
class InvestigationRecord:
    """A read-only call run during planning, or a model call refused before it ran (``ok=False``)."""

    tool: str
    args: dict[str, Any]
    ok: bool
    text: str


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd


@dataclass
class PlanResult:
    outcome: Outcome
    summary: str
    steps: list[PlannedCall] = field(default_factory=list)
    investigation: list[InvestigationRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    failure: Failure | None = None


@dataclass(frozen=True)
class Judgement:
    satisfied: bool
    reason: str
    usage: Usage = field(default_factory=Usage)
