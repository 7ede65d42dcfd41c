// ESRGAN's original state-dict keys (model.N, model.1.sub.B.RDBr.convc.0) renamed to BasicSR's
// (conv_first, body.B.rdbr.convc, conv_body, conv_upK, conv_hr, conv_last).
#pragma once

#include "upframe/weights/state_dict.hpp"

namespace upframe::weights {

StateDict esrgan_with_new_keys(const StateDict& old_keys);

}  // namespace upframe::weights
