"""The sharing policy: documents, compilation, evaluation and redaction. Pure logic, no I/O.

>>> compiled = compile_policy(load_policy(Path("examples/policy.yaml")), schema, keys)
>>> decision = compiled.evaluate(bulletin)     # a View per entitled agency, a reason per other
"""

from bus.policy._compile import (
    CompiledPolicy,
    Decision,
    PlanEntry,
    View,
    Withheld,
    WithheldReason,
    compile_policy,
)
from bus.policy._document import (
    MARKING_ORDER,
    Action,
    Agency,
    DropRedaction,
    GeneralizeRedaction,
    MaskRedaction,
    Policy,
    PseudonymizeRedaction,
    RecipientSelector,
    Redaction,
    SharingRule,
    SourceSelector,
    TruncateRedaction,
    load_policy,
    parse_policy,
)
from bus.policy._explain import (
    AccessChange,
    AgencyTrace,
    DryRun,
    FieldChange,
    PolicyDiff,
    diff,
    dry_run,
)
from bus.policy._redact import AppliedRedaction, RedactionKeys, Step

__all__ = [
    "MARKING_ORDER",
    "AccessChange",
    "Action",
    "Agency",
    "AgencyTrace",
    "AppliedRedaction",
    "CompiledPolicy",
    "Decision",
    "DropRedaction",
    "DryRun",
    "FieldChange",
    "GeneralizeRedaction",
    "MaskRedaction",
    "PlanEntry",
    "Policy",
    "PolicyDiff",
    "PseudonymizeRedaction",
    "RecipientSelector",
    "Redaction",
    "RedactionKeys",
    "SharingRule",
    "SourceSelector",
    "Step",
    "TruncateRedaction",
    "View",
    "Withheld",
    "WithheldReason",
    "compile_policy",
    "diff",
    "dry_run",
    "load_policy",
    "parse_policy",
]
