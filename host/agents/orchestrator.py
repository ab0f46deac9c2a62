"""The Orchestrator: reads the profile, tree, constraints and KB, and proposes validated actions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from arbor.tools.errors import InputError

from .. import policy
from . import briefing
from .bridge import Bridge, local_tool
from .prompts import render
from .proposals import Accepted, ProposedAction, queued, validate

if TYPE_CHECKING:
    from ..engine import Campaign
    from .team import Team


class ProposeActions(BaseModel):
    """The Orchestrator's structured output."""

    model_config = ConfigDict(extra="forbid")

    actions: list[ProposedAction] = Field(min_length=1, max_length=6)


async def propose(team: Team, c: Campaign, limit: int = 4) -> list[Accepted] | None:
    """New actions from the model, each validated; None when the model could not be asked."""
    base = c.baseline_node()
    evaluated = c.evaluated_keys()
    constraints = c.store.constraints()
    pending = queued(c.store, base.config)
    accepted: list[Accepted] = []
    state = {"clean": False}

    def handle(args: ProposeActions) -> dict[str, Any]:
        taken, rejected = [], []
        for i, proposal in enumerate(args.actions):
            if len(accepted) >= limit:
                rejected.append({"index": i, "error": f"at most {limit} actions per turn"})
                continue
            try:
                ok = validate(c.spec, base.config, proposal, evaluated, pending, constraints, "orchestrator")
            except InputError as exc:
                rejected.append({"index": i, "error": str(exc)})
                c.store.event("proposal_rejected", None, role="orchestrator", proposal=proposal.model_dump(),
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
    system = render("orchestrator", target=f"{c.spec.target.stack} serving {c.context.get('model')}",
                    hardware=briefing.hardware(c), workload=c.workload(),
                    throughput_target=c.spec.throughput_target or "none", knobs=briefing.knobs(c))
    profile = c.latest_profile(base)
    prompt = render("orchestrator_turn", base_node=base.id, base_config=base.config or "the server's defaults",
                    base_metrics=briefing.metrics(c, base), profile=profile or "not profiled",
                    tree=briefing.tree(c), constraints=briefing.constraints(c),
                    kb=await team.kb_entries(c, "throughput tuning " + c.spec.target.stack))
    run = await team.run("orchestrator", system, prompt, bridge, None, done=lambda: state["clean"])
    if run is None and not accepted:
        return None
    return accepted
