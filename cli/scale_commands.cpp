// The distributed-job subcommands: parsing, printing and exit codes only; the work is in
// upframe::cluster (src/pipeline/cluster.cpp).
#include "scale_commands.hpp"

#include "report_error.hpp"
#include "setup.hpp"

#include <cstdio>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "upframe/config.hpp"
#include "upframe/error.hpp"
#include "upframe/pipeline/cluster.hpp"
#include "upframe/pipeline/cluster_schedulers.hpp"

namespace upframe::cli {

namespace {

namespace fs = std::filesystem;

// `upframe plan`: its own flags, then every setting flag of a plain run, from the settings
// table (the same names and checks as upframe --help lists).
int plan_command(int argc, char** argv) {
  CLI::App app{
      "Cuts INPUT (a video, or a folder of them) at keyframes into segments and writes the "
      "job's manifest (JOB/manifest.json, JOB = OUTPUT.upframe-job by default). The other "
      "options are those of a plain upframe run, resolved now for every worker."};
  app.name("upframe plan");
  use_help_style(app);
  cluster::PlanOptions options;
  std::string input, config_file;
  app.add_option("input", input, "a video, or a folder of them")->required()->type_name("PATH");
  // The checks' own descriptions would print after the type name in --help.
  app.add_option("--segments", options.segments, "this many segments per file (at least 1)")
      ->type_name("N")
      ->check(CLI::Range(1, std::numeric_limits<int>::max()).description(""));
  app.add_option("--segment-seconds", options.segment_seconds,
                 "segments of about this many seconds (above 0)")
      ->type_name("S")
      ->check(CLI::PositiveNumber.description(""));
  app.add_option("--job-folder", options.job_folder, "the job's folder")
      ->type_name("DIR")
      ->default_str("OUTPUT.upframe-job");
  GivenSettings given;
  add_setting_flags(app, given, config_file);
  if (int status = parse_command_line(app, argc, argv); status >= 0) return status;
  Settings settings;
  load_settings(settings, config_file, given);
  settings.input = input;
  set_up_console(settings.quiet);
  const fs::path manifest = cluster::plan_job(settings, options);
  std::printf("%s\n", manifest.c_str());
  return 0;
}

// Runs `body`, mapping errors to the error line and exit status.
int guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    return report_error(e);
  } catch (const std::exception& e) {
    print_error(e.what());
    return int(ExitCode::kProcessingFailed);
  }
}

}  // namespace

int run_scale_command(int argc, char** argv) {
  if (argc < 2) return -1;
  const std::string command = argv[1];
  if (command != "plan" && command != "run-segment" && command != "join" && command != "submit" &&
      command != "status")
    return -1;
  // Sub-command argv: "upframe plan" as the program name.
  std::vector<std::string> rest(argv + 2, argv + argc);
  std::string program = std::string("upframe ") + command;
  std::vector<char*> sub_argv = {program.data()};
  for (std::string& a : rest) sub_argv.push_back(a.data());
  const int sub_argc = int(sub_argv.size());

  if (command == "plan") return guarded([&] { return plan_command(sub_argc, sub_argv.data()); });

  std::string manifest;
  bool quiet = false;
  CLI::App app{"upframe " + command + ": see docs/SCALE.md"};
  app.add_option("manifest", manifest, "the job's manifest (from upframe plan)")
      ->required()
      ->type_name("MANIFEST");
  app.add_flag("--quiet", quiet, "print errors only");

  if (command == "run-segment") {
    int64_t index = -1;
    app.add_option("--index", index,
                   "segment to run [default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX]")
        ->type_name("I");
    if (int status = parse_command_line(app, sub_argc, sub_argv.data()); status >= 0) return status;
    set_up_console(quiet);
    return guarded([&] {
      if (index < 0) {
        const std::optional<int64_t> from_environment = cluster::index_from_environment();
        if (!from_environment)
          throw UsageError(manifest,
                           "no segment index: give --index I, or run under a Slurm array "
                           "(SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job "
                           "(JOB_COMPLETION_INDEX)");
        index = *from_environment;
      }
      cluster::run_segment(manifest, index);
      return 0;
    });
  }
  if (command == "join") {
    std::string stats;
    double wait = 0;
    app.add_option("--stats", stats, "write the job's stats JSON to FILE")->type_name("FILE");
    app.add_option("--wait", wait, "wait up to this long for the segments first")
        ->type_name("SECONDS");
    if (int status = parse_command_line(app, sub_argc, sub_argv.data()); status >= 0) return status;
    set_up_console(quiet);
    return guarded([&] {
      const nlohmann::json result = cluster::join_job(manifest, stats, wait);
      if (!quiet) std::cout << result["totals"].dump(2) << std::endl;
      return 0;
    });
  }
  if (command == "status") {
    bool json_output = false;
    app.add_flag("--json", json_output, "print the status as JSON");
    if (int status = parse_command_line(app, sub_argc, sub_argv.data()); status >= 0) return status;
    set_up_console(quiet);
    return guarded([&] {
      const nlohmann::json s = cluster::job_status(manifest);
      if (json_output) {
        std::cout << s.dump() << std::endl;
        return 0;
      }
      for (const auto& seg : s["list"])
        std::printf("segment %lld: %s, %lld/%lld frames%s\n",
                    (long long)seg["index"].get<int64_t>(), seg["state"].get<std::string>().c_str(),
                    (long long)seg["frames_done"].get<int64_t>(),
                    (long long)seg["frames"].get<int64_t>(),
                    seg.contains("host") ? (" on " + seg["host"].get<std::string>()).c_str() : "");
      std::printf(
          "%lld/%lld segments done, %lld running, %lld missing; frames %lld/%lld; %.1f fps; "
          "ETA %s\n",
          (long long)s["segments_done"].get<int64_t>(), (long long)s["segments"].get<int64_t>(),
          (long long)s["segments_running"].get<int64_t>(),
          (long long)s["segments_missing"].get<int64_t>(),
          (long long)s["frames_done"].get<int64_t>(), (long long)s["frames_total"].get<int64_t>(),
          s["fps"].get<double>(),
          s["eta_s"].is_null() ? "unknown (no worker running)"
                               : (std::to_string(int(s["eta_s"].get<double>())) + "s").c_str());
      return 0;
    });
  }
  // submit
  bool slurm = false, k8s = false, print_only = false;
  cluster::SlurmOptions so;
  cluster::KubernetesOptions ko;
  auto* slurm_flag = app.add_flag("--slurm", slurm, "submit a Slurm job array and a join job");
  auto* k8s_flag = app.add_flag("--k8s", k8s, "write a Kubernetes Indexed Job and a join Job");
  slurm_flag->excludes(k8s_flag);
  app.add_flag("--print", print_only, "print the scripts only; submit nothing");
  app.add_option("--partition", so.partition, "Slurm partition")->type_name("P");
  app.add_option("--gres", so.gres, "Slurm generic resources per segment, e.g. gpu:1")
      ->type_name("SPEC");
  app.add_option("--cpus-per-task", so.cpus_per_task, "Slurm CPUs per segment")->type_name("N");
  app.add_option("--mem", so.mem, "Slurm memory per task, e.g. 8G")->type_name("SIZE");
  app.add_option("--time", so.time, "Slurm time limit per task")->type_name("HH:MM:SS");
  app.add_option("--max-running", so.max_running, "at most N segments at once (array %N)")
      ->type_name("N");
  app.add_option("--sbatch", so.extra, "another #SBATCH line, e.g. --sbatch=--account=A")
      ->type_name("ARG")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--upframe", so.upframe, "the upframe program the jobs run [default: this one]")
      ->type_name("PATH");
  app.add_option("--image", ko.image, "Kubernetes: container image")
      ->type_name("IMAGE")
      ->default_str(ko.image);
  app.add_option("--claim", ko.claim,
                 "Kubernetes: PersistentVolumeClaim with the input, job folder and output "
                 "[default: a hostPath]")
      ->type_name("NAME");
  app.add_option("--mount", ko.mount, "Kubernetes: where the shared volume is mounted")
      ->type_name("PATH");
  app.add_option("--parallelism", ko.parallelism, "Kubernetes: pods at once")->type_name("N");
  app.add_option("--gpus", ko.gpu, "Kubernetes: nvidia.com/gpu limit per segment pod")
      ->type_name("N");
  if (int status = parse_command_line(app, sub_argc, sub_argv.data()); status >= 0) return status;
  set_up_console(quiet);
  return guarded([&] {
    if (!slurm && !k8s) throw UsageError(manifest, "submit: give --slurm or --k8s");
    if (k8s) {
      const auto [path, text] = cluster::write_kubernetes_manifest(manifest, ko);
      if (print_only)
        std::cout << text;
      else
        std::printf("%s\n", path.c_str());
      spdlog::info("wrote {}: apply it with kubectl apply -f {}", path.string(), path.string());
      return 0;
    }
    const cluster::SlurmScripts scripts = cluster::write_slurm_scripts(manifest, so);
    if (print_only) {
      std::cout << "# " << scripts.segments.string() << "\n"
                << scripts.segments_text << "# " << scripts.join.string() << "\n"
                << scripts.join_text;
      return 0;
    }
    const auto [array, join] = cluster::submit_slurm(scripts);
    std::printf("%s %s\n", array.c_str(), join.c_str());
    spdlog::info("submitted the segments as Slurm job {} and the join as job {} (afterok)", array,
                 join);
    return 0;
  });
}

}  // namespace upframe::cli
