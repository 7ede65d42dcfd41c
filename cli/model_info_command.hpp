// `upframe model-info FILE [--json]`: what a model file is (format, family, scale, channels,
// parameters, weight precision, ops), or the one error line a run with it would give.
#pragma once

int run_model_info_command(int argc, char** argv);
