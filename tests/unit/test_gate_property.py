"""The gate as a property: whatever happens, a mutating call runs only if a grant by someone other than
the requester names its task UID and the hash of the proposal holding it.

Random sequences (seeded, so a failure is reproducible from the printed seed) mix what people and
attackers do — new revisions after replanning, grants by the requester and by others for the current, an
earlier or a forged hash, for another task UID, denials, step subsets, annotation approvals recorded by
the operator, expired grants, status edits by someone holding ``agenttasks/status`` (approvals and step
states invented, calls changed with and without recomputing the hash, the requester renamed) and restarts
(nothing kept but the objects). After every event the executor's two decisions run exactly as in
production: ``next_action`` on the (possibly forged) status, then ``authorize`` on the grant objects. The
check that a call was allowed is written independently of both: it recomputes the hash from the calls.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bosun.api.models import AgentTaskStatus, ApprovalRecord, UserRef
from bosun.core import identity as ids
from bosun.core.approval import GrantFacts, authorize
from bosun.core.approval_policy import ApprovalPolicy
from bosun.core.proposals import next_action, proposal_records
from bosun.planner import PlannedCall
from bosun.steps.plan import build_proposal

UID = "0b7c6a0e-1111-4222-8333-444455556666"
OTHER_UID = "9f0e8d7c-5555-4666-8777-888899990000"
OPERATOR = ids.Identity("system:serviceaccount:bosun-system:bosun")
REQUESTER = UserRef(user="bob", groups=["sre"])
PEOPLE = [REQUESTER, UserRef(user="alice", groups=["sre"]), UserRef(user="carol", groups=["dev"])]
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SEQUENCES = 400
EVENTS = 24


def independent_hash(uid: str, revision: int, calls: list[dict[str, Any]]) -> str:
    """The documented binding, recomputed here rather than imported: uid, revision, exact calls."""
    payload = json.dumps(
        {"task": uid, "revision": revision, "calls": calls},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class World:
    rng: random.Random
    status: AgentTaskStatus = field(default_factory=AgentTaskStatus)
    grants: list[dict[str, Any]] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    clock: datetime = T0
    ran: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=self.rng.randint(1, 120))
        return self.clock

    # ----- what people, attackers and the operator do ---------------------------------------------

    def propose(self) -> None:
        revision = (self.status.proposal.revision if self.status.proposal else 0) + 1
        calls = [
            PlannedCall(
                "",
                self.rng.choice(["k8s_scale", "k8s_rollout_restart", "k8s_delete"]),
                {
                    "kind": "deployment",
                    "name": f"w{n}",
                    "namespace": "shop",
                    "replicas": self.rng.randint(0, 9),
                },
                "why",
            )
            for n in range(self.rng.randint(1, 3))
        ]
        proposal, problem = build_proposal(
            calls, task_uid=UID, revision=revision, summary="", now=self.tick()
        )
        assert proposal is not None, problem
        self.hashes.append(proposal.hash)
        self.status = self.status.model_copy(
            update={
                "phase": "AwaitingApproval",
                "requester": REQUESTER,
                "proposal": proposal,
                "steps": [*self.status.steps, *proposal_records(proposal)],
            }
        )
        self.log.append(f"propose r{revision} {proposal.hash[:15]}")

    def grant(self) -> None:
        person = self.rng.choice(PEOPLE)
        choices = [*self.hashes, "sha256:" + "e" * 64]
        plan_hash = self.rng.choice(choices)
        spec: dict[str, Any] = {
            "taskRef": {
                "name": "t",
                **({"uid": self.rng.choice([UID, OTHER_UID])} if self.rng.random() < 0.5 else {}),
            },
            "planHash": plan_hash,
            "decision": self.rng.choice(["Approve", "Approve", "Approve", "Deny"]),
        }
        if self.rng.random() < 0.3:
            spec["steps"] = self.rng.sample(["s1", "s2", "s3"], self.rng.randint(1, 2))
        if self.rng.random() < 0.2:
            spec["expiresAt"] = (self.clock + timedelta(seconds=self.rng.randint(-60, 300))).isoformat()
        via_annotation = self.rng.random() < 0.3
        creator = UserRef(user=OPERATOR.user) if via_annotation else person
        annotations = {ids.APPROVER: creator.user, ids.APPROVER_GROUPS: ids.encode_groups(creator.groups)}
        if via_annotation:
            annotations |= {
                ids.ON_BEHALF_OF: person.user,
                ids.ON_BEHALF_OF_GROUPS: ids.encode_groups(person.groups),
            }
        name = f"g{len(self.grants)}"
        self.grants.append(
            {
                "metadata": {
                    "name": name,
                    "creationTimestamp": self.tick().strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "annotations": annotations,
                },
                "spec": spec,
            }
        )
        self.log.append(
            f"grant {name} by {person.user} {spec['decision']} {plan_hash[:15]} {spec.get('steps')}"
        )

    def forge(self) -> None:
        """Someone with agenttasks/status rights edits the ledger."""
        proposal = self.status.proposal
        if proposal is None:
            return
        how = self.rng.choice(["approve", "args", "args-rehash", "requester", "executing"])
        status = self.status
        if how in ("args", "args-rehash"):
            steps = [s.model_copy(update={"args": {**s.args, "replicas": 99}}) for s in proposal.steps]
            new_hash = proposal.hash
            if how == "args-rehash":
                calls = [{"id": s.id, "tool": s.tool, "args": s.args} for s in steps]
                new_hash = independent_hash(UID, proposal.revision, calls)
                self.hashes.append(new_hash)  # an approver may later approve what the forger shows
            forged = proposal.model_copy(update={"steps": steps, "hash": new_hash})
            records = [
                r.model_copy(update={"args": {**r.args, "replicas": 99}})
                if r.revision == proposal.revision
                else r
                for r in status.steps
            ]
            status = status.model_copy(update={"proposal": forged, "steps": records})
        if how in ("approve", "args", "args-rehash", "executing"):
            record = ApprovalRecord(
                grant="forged",
                decision="Approve",
                accepted=True,
                revision=proposal.revision,
                approver=UserRef(user="alice"),
                reason="Approved",
                at=self.clock,
            )
            records = [
                r.model_copy(update={"state": "Approved", "grant": "forged"})
                if r.revision == proposal.revision and r.state == "AwaitingApproval"
                else r
                for r in status.steps
            ]
            status = status.model_copy(
                update={"approvals": [*status.approvals, record], "steps": records, "phase": "Executing"}
            )
        if how == "requester":
            status = status.model_copy(update={"requester": UserRef(user="alice")})
        self.status = status
        self.log.append(f"forge {how}")

    def settle_by_operator(self) -> None:
        """The operator's own approval bookkeeping: steps of the current revision approved by grants."""
        proposal = self.status.proposal
        if proposal is None:
            return
        outcome = authorize(
            self.facts(),
            task_name="t",
            task_uid=UID,
            namespace="shop",
            proposal=proposal,
            requester=REQUESTER,
            policy=ApprovalPolicy(),
            now=self.clock,
        )
        if isinstance(outcome, str):
            return
        records = [
            r.model_copy(update={"state": "Approved", "grant": "legit"})
            if r.revision == proposal.revision
            and r.step_id in outcome.approved
            and r.state == "AwaitingApproval"
            else r
            for r in self.status.steps
        ]
        legit = ApprovalRecord(
            grant="legit",
            decision="Approve",
            accepted=True,
            revision=proposal.revision,
            reason="Approved",
            at=self.clock,
        )
        self.status = self.status.model_copy(
            update={"steps": records, "approvals": [*self.status.approvals, legit], "phase": "Executing"}
        )
        self.log.append("operator settles")

    def restart(self) -> None:
        """A new process keeps nothing but the stored objects: the status round-trips through JSON."""
        self.status = AgentTaskStatus.model_validate(json.loads(json.dumps(self.status.wire())))
        self.log.append("restart")

    # ----- the executor's decisions, as in production ------------------------------------------------

    def facts(self) -> list[GrantFacts]:
        facts = []
        for grant in self.grants:
            approver, via_annotation = ids.grant_origin(grant["metadata"], OPERATOR)
            facts.append(GrantFacts(grant, approver, via_annotation))
        return facts

    def execute(self) -> None:
        for _ in range(5):
            action = next_action(self.status, UID, lambda tool: tool == "k8s_scale")
            if action.kind != "run" or action.step is None or self.status.proposal is None:
                return
            outcome = authorize(
                self.facts(),
                task_name="t",
                task_uid=UID,
                namespace="shop",
                proposal=self.status.proposal,
                requester=REQUESTER,
                policy=ApprovalPolicy(),
                now=self.clock,
            )
            if isinstance(outcome, str) or action.step.id not in outcome.approved:
                return
            step = action.step
            self.ran.append((self.status.proposal.hash, step.tool, step.args))
            self.check_allowed(step.id, step.tool, step.args)
            records = [
                r.model_copy(update={"state": "Succeeded"})
                if r.revision == self.status.proposal.revision and r.step_id == step.id
                else r
                for r in self.status.steps
            ]
            self.status = self.status.model_copy(update={"steps": records})

    def check_allowed(self, step_id: str, tool: str, args: dict[str, Any]) -> None:
        proposal = self.status.proposal
        assert proposal is not None
        calls = [{"id": s.id, "tool": s.tool, "args": s.args} for s in proposal.steps]
        assert independent_hash(UID, proposal.revision, calls) == proposal.hash, self.story(
            "hash does not name the calls"
        )
        assert {"id": step_id, "tool": tool, "args": args} in calls, self.story("call not in the proposal")
        named = [
            g
            for g in self.grants
            if g["spec"]["planHash"] == proposal.hash
            and g["spec"]["decision"] == "Approve"
            and g["spec"]["taskRef"].get("uid", UID) == UID
            and (ids.grant_origin(g["metadata"], OPERATOR)[0] or REQUESTER).user != REQUESTER.user
            and step_id in g["spec"].get("steps", [step_id])
        ]
        assert named, self.story(f"{tool} {args} ran with no grant by another person for {proposal.hash}")

    def story(self, what: str) -> str:
        return f"{what}\n  " + "\n  ".join(self.log)


def test_no_call_runs_without_a_grant_by_another_person_for_its_exact_hash() -> None:
    ran = 0
    for seed in range(SEQUENCES):
        world = World(random.Random(seed))
        world.propose()
        for _ in range(EVENTS):
            event = world.rng.choices(
                [world.propose, world.grant, world.forge, world.settle_by_operator, world.restart],
                weights=[1, 5, 2, 2, 1],
            )[0]
            event()
            world.execute()
        ran += len(world.ran)
    # The property is not vacuous: legitimate approvals did run calls in many sequences.
    assert ran > SEQUENCES // 4, ran
