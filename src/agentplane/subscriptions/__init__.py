"""Live events: the broker (in-memory or Redis), the live feeds every subscriber goes through,
the streams callers follow, open long-lived connections by credential.
Beside resolvers/ (may import it), above models/ and core/; never a transport."""
