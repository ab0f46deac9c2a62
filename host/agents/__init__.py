"""The LLM agents: backends, the tool bridge, the agent loop, Orchestrator, Domain Specialists and Critic."""
