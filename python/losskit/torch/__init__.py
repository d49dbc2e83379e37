"""losskit for PyTorch: ``losskit.torch.functional.<name>`` and ``losskit.torch.nn.<ClassName>``,
drop-in for ``torch.nn.functional`` and ``torch.nn``'s losses on CPU tensors, with torch's autograd.

Needs ``torch`` (``pip install losskit[torch]``); ``import losskit`` alone never imports it.
See docs/adapters.md.

>>> import torch
>>> import losskit.torch as lt
>>> x = torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]], dtype=torch.float64, requires_grad=True)
>>> loss = lt.functional.cross_entropy(x, torch.tensor([2, 0]))  # forward and gradient, fused
>>> loss.backward()                                              # hands the gradient over
>>> round(loss.item(), 6), x.grad.numpy().round(4).tolist()
(0.753109, [[0.045, 0.1224, -0.1674], [-0.3333, 0.1667, 0.1667]])
>>> crit = lt.nn.CrossEntropyLoss(label_smoothing=0.1)           # torch's class, losskit's forward
>>> isinstance(crit, torch.nn.CrossEntropyLoss)
True
"""

from __future__ import annotations

from . import functional, nn

__all__ = ["functional", "nn"]
