"""Live events: the broker (in-memory or Redis) and the replay-then-tail streams."""
