"""The real work of Arbor as a plain library: no MCP, no LLM, nothing of ours imported."""
