"""Liaison's core: an inter-agency information-sharing bus on Apache Kafka.

Subpackages: :mod:`bus.kafka` (all Kafka access), :mod:`bus.broker` (a local secured
broker), :mod:`bus.errors` (the exception tree).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
