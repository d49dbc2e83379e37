// Umbrella header: the whole public C++ API of losskit.
#pragma once

#include "losskit/errors.hpp"
#include "losskit/half.hpp"
#include "losskit/pointwise.hpp"
// classification header
#include "losskit/classification.hpp"
// embedding header
#include "losskit/embedding.hpp"
// ctc header
#include "losskit/ctc.hpp"
// large_vocab header
#include "losskit/large_vocab.hpp"
// contrastive header
#include "losskit/contrastive.hpp"
// segmentation header
#include "losskit/segmentation.hpp"
// detection header
#include "losskit/detection.hpp"
// the shared types
#include "losskit/reduction.hpp"
#include "losskit/threads.hpp"
#include "losskit/view.hpp"
