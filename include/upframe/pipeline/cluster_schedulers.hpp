// The scheduler side of a distributed job (docs/SCALE.md): the scripts that run a planned job's
// segments and its join under Slurm (a job array, then the join after it) or Kubernetes (an
// Indexed Job, then a join Job that waits for the segments).
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace upframe::cluster {

struct SlurmOptions {
  std::string partition;
  std::string gres;  // e.g. gpu:1
  int cpus_per_task = 0;
  std::string mem;                 // e.g. 8G
  std::string time;                // e.g. 02:00:00
  int max_running = 0;             // %N on the array: at most N segments at once
  std::vector<std::string> extra;  // more #SBATCH lines, e.g. "--account=X"
  std::string upframe;             // the program the jobs run (default: this one)
};
struct KubernetesOptions {
  std::string image = "upframe:latest";
  std::string claim;  // the PersistentVolumeClaim holding the input, job folder and output
  std::filesystem::path mount;      // where it is mounted (the same path on every node); default:
                                    // the folder holding the input, job folder and output
  int parallelism = 0;              // pods at once (default: every segment)
  std::string name;                 // Job name prefix (default: upframe-<job folder's name>)
  std::string upframe = "upframe";  // the program inside the image
  std::string gpu;                  // e.g. "1": nvidia.com/gpu limit
};

struct SlurmScripts {
  std::filesystem::path segments, join;  // where they were written
  std::string segments_text, join_text;
};
// Writes the array script (one task per segment) and the join script into JOB/slurm/.
SlurmScripts write_slurm_scripts(const std::filesystem::path& manifest,
                                 const SlurmOptions& options);
// Submits them with sbatch (the join with --dependency=afterok on the array); returns the two
// job ids. Throws Error with sbatch's message when it fails.
std::pair<std::string, std::string> submit_slurm(const SlurmScripts& scripts);

// Writes the Indexed Job (completions = segments) and the join Job into JOB/k8s/job.yaml;
// returns the path and the text.
std::pair<std::filesystem::path, std::string> write_kubernetes_manifest(
    const std::filesystem::path& manifest, const KubernetesOptions& options);

}  // namespace upframe::cluster
