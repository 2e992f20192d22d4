"""The price list's version: stamped on every usage record so a cost can be traced to
the prices it was computed with. Bump it whenever a price in `catalog.CATALOG` changes."""

PRICING_VERSION = "2026-11-01"
