"""Liaison's built-in adapters: jsonl, webhook, cap and stix.

Each uses only :mod:`bus`'s public API, exactly as a third-party adapter would
(``tests/unit/adapters/test_public_api_only.py`` enforces it by import analysis).
"""
