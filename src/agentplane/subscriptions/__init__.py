"""Live events: the broker (in-memory or Redis), replay-then-tail streams, open-socket registry.
Beside resolvers/ (may import it), above models/ and core/; never a transport."""
