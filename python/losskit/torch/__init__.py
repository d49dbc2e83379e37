"""losskit for PyTorch: ``losskit.torch.functional.<name>`` and ``losskit.torch.nn.<ClassName>``,
drop-in for ``torch.nn.functional`` and ``torch.nn``'s losses on CPU tensors, with torch's autograd.

Needs ``torch`` (``pip install losskit[torch]``); ``import losskit`` alone never imports it.
See docs/adapters.md.
"""

from __future__ import annotations

from . import functional, nn

__all__ = ["functional", "nn"]
