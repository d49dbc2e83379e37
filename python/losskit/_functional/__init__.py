"""The functional layer, one module per loss family (as ``cpp/src/<family>``); the public names
are in :mod:`losskit.functional`. :mod:`._spec` turns each loss's one definition into its three
entry points and lists them in ``_spec.LOSSES``, in the order imported here."""

from . import pointwise, classification, embedding, ctc, large_vocab, contrastive  # noqa: F401  (each defines its losses)
from . import segmentation  # noqa: F401
from . import detection  # noqa: F401
