// The distributed-job subcommands (docs/SCALE.md): plan, run-segment, join, submit, status.
#pragma once

namespace upframe::cli {

// Runs `upframe SUBCOMMAND ...` when argv[1] is one of the distributed-job subcommands and
// returns its exit status; returns -1 otherwise (the caller runs a plain job).
int run_scale_command(int argc, char** argv);

}  // namespace upframe::cli
