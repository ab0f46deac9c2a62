"""The Orchestrator: reads the profile, tree, constraints and KB, and proposes validated actions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .. import policy
from ..errors import ProposalError
from ..models import ProposedBy
from ..tree import SearchTree
from . import briefing
from .bridge import Bridge, local_tool
from .prompts import render
from .proposals import Accepted, ProposedAction, validate
from .team import Team


class ProposeActions(BaseModel):
    """The Orchestrator's structured output."""

    model_config = ConfigDict(extra="forbid")

    actions: list[ProposedAction] = Field(min_length=1, max_length=6)


async def propose(team: Team, tree: SearchTree, limit: int = 4) -> list[Accepted] | None:
    """New actions from the model, each validated; None when the model could not be asked."""
    base = tree.best()
    evaluated = tree.evaluated_keys()
    constraints = tree.constraints()
    pending = tree.queued_keys(base.config)
    accepted: list[Accepted] = []
    state = {"clean": False}

    def handle(args: ProposeActions) -> dict[str, Any]:
        taken, rejected = [], []
        for i, proposal in enumerate(args.actions):
            if len(accepted) >= limit:
                rejected.append({"index": i, "error": f"at most {limit} actions per turn"})
                continue
            try:
                ok = validate(tree.spec, base.config, proposal, evaluated, pending, constraints,
                              ProposedBy.ORCHESTRATOR)
            except ProposalError as exc:
                rejected.append({"index": i, "error": str(exc)})
                team.store.event("proposal_rejected", None, role="orchestrator", proposal=proposal.model_dump(),
                                 error=str(exc))
                continue
            accepted.append(ok)
            pending.add(policy.config_key(ok.config))
            taken.append({"index": i, "title": ok.action.title})
        state["clean"] = not rejected and bool(accepted)
        hint = "fix the rejected actions and call propose_actions again" if rejected else "done"
        return {"accepted": taken, "rejected": rejected, "next": hint}

    tool = local_tool("propose_actions", "Propose the next actions (validated; rejected ones come back with the "
                      "reason).", ProposeActions, handle)
    bridge = Bridge(team.clients, "orchestrator", [tool])
    await bridge.load()
    spec = tree.spec
    system = render("orchestrator", target=briefing.target(spec, team.context),
                    hardware=briefing.hardware(spec, team.context), workload=tree.workload(),
                    throughput_target=spec.throughput_target or "none", knobs=briefing.knobs(spec))
    prompt = render("orchestrator_turn", base_node=base.id, base_config=base.config or "the server's defaults",
                    base_metrics=briefing.metrics(tree, base), profile=tree.latest_profile(base) or "not profiled",
                    tree=briefing.tree(tree), constraints=briefing.constraints(tree),
                    kb=await team.kb_entries("throughput tuning " + spec.target.stack))
    run = await team.run("orchestrator", system, prompt, bridge, None, done=lambda: state["clean"])
    if run is None and not accepted:
        return None
    return accepted
