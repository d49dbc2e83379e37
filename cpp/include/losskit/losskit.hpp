// Umbrella header: the whole public C++ API of losskit.
#pragma once

#include "losskit/errors.hpp"
#include "losskit/pointwise.hpp"
// classification header
#include "losskit/classification.hpp"
// embedding header
// ctc header
// large_vocab header
#include "losskit/reduction.hpp"
#include "losskit/threads.hpp"
#include "losskit/view.hpp"
