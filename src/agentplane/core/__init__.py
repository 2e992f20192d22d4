"""Core: settings, database and transactions, errors, ids, secrets, pricing, metrics, throttles.

Imports nothing of agentplane outside core/; every other package may import it.
"""
