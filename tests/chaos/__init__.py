"""The chaos harness (issue 10): fault injection against the edge router on a real broker.

``tests.chaos.harness`` holds the scenarios (R1 SIGKILLed routers, R2 a SIGKILLed broker,
R3 a zombie router, F1 fuzzed inbound records) and their shared verification;
``python -m tests.chaos`` runs them at full size on a broker of its own (``make chaos``);
``tests/chaos/test_chaos.py`` runs small versions in the test suite. See ``docs/chaos.md``.
"""
