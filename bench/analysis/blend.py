"""What a learned re-ranking blend chose, read from the figures its cell recorded (llm-rerank's `blend_*` stats).

A re-ranker whose blend gives the cross-encoder (almost) no weight ranks as its retriever does, at many times
the cost: reports must say so in words rather than let its quality read as the language model's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: below this share of the blended score's within-list spread the cross-encoder cannot move the order much:
#: the blend is said to keep the retriever's order
SILENT_SHARE = 0.01
#: and at or above this share of its training lists left in the retriever's order, the blend kept that order
KEPT_ORDER_SHARE = 0.99


@dataclass(frozen=True)
class BlendChoice:
    retriever: str
    recorded: bool  # False for runs written before the blend's weights were recorded
    ce_spread_share: float | None = None
    ce_weight_norm: float | None = None
    order_kept_share: float | None = None
    l2: float | None = None

    @property
    def cross_encoder_silent(self) -> bool:
        """The cross-encoder's weight is (practically) 0: the blend ranks by the retriever's own features."""
        return self.recorded and (self.ce_weight_norm == 0 or (self.ce_spread_share or 0.0) < SILENT_SHARE)

    @property
    def keeps_retriever_order(self) -> bool:
        """Silent, and the retriever features' weights leave (almost) every training list in the retriever's order."""
        return self.cross_encoder_silent and (self.order_kept_share or 0.0) >= KEPT_ORDER_SHARE


def _value(cell: Any, name: str) -> float | None:
    row = cell.metric(name)
    return None if row is None or row.value is None else float(row.value)


def blend_choice(cell: Any) -> BlendChoice | None:
    """The blend of a re-ranking cell with a learned blend, else None (other cells, blend="none")."""
    key = str((cell.extras or {}).get("gate_key") or "")
    if "blend='learned'" not in key and cell.metric("blend_ce_weight_norm") is None:
        return None
    found = re.search(r"retriever='([^']+)'", key)
    retriever = found.group(1) if found else "the retriever"
    share = _value(cell, "blend_ce_spread_share")
    return BlendChoice(
        retriever=retriever,
        recorded=share is not None,
        ce_spread_share=share,
        ce_weight_norm=_value(cell, "blend_ce_weight_norm"),
        order_kept_share=_value(cell, "blend_order_kept_share"),
        l2=_value(cell, "l2"),
    )
