"""Shadow traffic (issue 20 §2, docs/EVALUATION.md "Shadow traffic"): a sampled copy of a request, sent after its
reply went to the client, to the models routing.json ``"shadow"`` names for its route; only aggregates are kept."""

from bkvy.core.shadow.book import ShadowBook, ShadowSkip
from bkvy.core.shadow.runner import ShadowRunner

__all__ = ["ShadowBook", "ShadowRunner", "ShadowSkip"]
