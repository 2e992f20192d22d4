"""Task execution: the worker, the agent loop, tools and model providers."""
