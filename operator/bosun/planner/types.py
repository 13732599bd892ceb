"""What the operator core hands the planner and gets back (contract 5 of the team brief).

Plain dataclasses, so the operator can build them from ``.status`` and write them back without the
planner's internals (LangGraph state, LiteLLM responses) leaking into the resource.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bosun_tools.kube import Identity

Outcome = Literal["answer", "proposal", "unsupported", "failed"]
Failure = Literal["model", "planning"]
"""Why planning failed: the model could not be used (fix its configuration), or the plan itself failed."""


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
    """Model calls allowed in one planning pass, so a looping model cannot spend without bound."""


@dataclass
class PlanningContext:
    request: str
    namespace: str
    target_namespaces: list[str]
    identity: Identity
    iteration: int = 1
    max_iterations: int = 3
    history: list[str] = field(default_factory=list)
    executor: Identity | None = None
    """Who will run approved changes when not the requester (a namespace's execution ServiceAccount)."""

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
