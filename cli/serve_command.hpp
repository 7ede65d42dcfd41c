// `upframe serve`: the web UI subcommand (flags here, the server in src/web).
#pragma once

// argv[0] is "serve". Returns the exit status.
int run_serve_command(int argc, char** argv);
