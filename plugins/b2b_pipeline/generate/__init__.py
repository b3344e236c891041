"""The demo company generator: a synthetic B2B seller's CRM and billing exports as a file drop.

    from b2b_pipeline.generate import generate_company
    summary = generate_company(Path("demo-drop"), seed=42, accounts=2000, nightly_days=7)

See docs/generator.md.
"""

from .drop import MAX_NIGHTLY_DAYS, GenerationSummary, check_arguments, existing_drop, generate_company, remove_drop

__all__ = [
    "MAX_NIGHTLY_DAYS",
    "GenerationSummary",
    "check_arguments",
    "existing_drop",
    "generate_company",
    "remove_drop",
]
