"""Core: settings, the database handle, errors, ids, encryption, pricing, metrics, throttles.

Imports nothing of agentplane outside core/; every other package may import it.
"""
