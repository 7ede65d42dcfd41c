// The Slurm and Kubernetes writers of a distributed job: text generated from the manifest that
// cluster.cpp planned; the workers they start run `upframe run-segment` and `upframe join`.
#include "upframe/pipeline/cluster_schedulers.hpp"

#include <cctype>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "pipeline/cluster_internal.hpp"
#include "upframe/error.hpp"

namespace upframe::cluster {

namespace fs = std::filesystem;
using nlohmann::json;

SlurmScripts write_slurm_scripts(const fs::path& manifest_path, const SlurmOptions& options) {
  const json m = load_manifest(manifest_path);
  const fs::path manifest = fs::absolute(manifest_path);
  const fs::path job = m["job_folder"].get<std::string>();
  const std::string program = options.upframe.empty() ? this_program().string() : options.upframe;
  const size_t count = m["segments"].size();
  std::string common;
  if (!options.partition.empty()) common += "#SBATCH --partition=" + options.partition + "\n";
  if (!options.mem.empty()) common += "#SBATCH --mem=" + options.mem + "\n";
  if (!options.time.empty()) common += "#SBATCH --time=" + options.time + "\n";
  for (const std::string& line : options.extra) common += "#SBATCH " + line + "\n";
  std::string segment_lines = common;
  if (!options.gres.empty()) segment_lines += "#SBATCH --gres=" + options.gres + "\n";
  if (options.cpus_per_task > 0)
    segment_lines += "#SBATCH --cpus-per-task=" + std::to_string(options.cpus_per_task) + "\n";
  SlurmScripts scripts;
  scripts.segments = job / "slurm" / "segments.sbatch";
  scripts.join = job / "slurm" / "join.sbatch";
  scripts.segments_text =
      "#!/bin/sh\n"
      "# upframe: one array task per segment (SLURM_ARRAY_TASK_ID is the segment index).\n"
      "#SBATCH --job-name=upframe-segments\n"
      "#SBATCH --array=0-" +
      std::to_string(count - 1) +
      (options.max_running > 0 ? "%" + std::to_string(options.max_running) : std::string()) +
      "\n#SBATCH --output=" + (job / "logs" / "segment_%a.log").string() + "\n" + segment_lines +
      "exec " + shell_quote(program) + " run-segment " + shell_quote(manifest.string()) + "\n";
  scripts.join_text =
      "#!/bin/sh\n"
      "# upframe: joins the segments once every array task succeeded (afterok).\n"
      "#SBATCH --job-name=upframe-join\n"
      "#SBATCH --output=" +
      (job / "logs" / "join.log").string() + "\n" + common + "exec " + shell_quote(program) +
      " join " + shell_quote(manifest.string()) + " --stats " +
      shell_quote((job / "stats.json").string()) + "\n";
  std::error_code ec;
  fs::create_directories(job / "slurm", ec);
  write_atomically(scripts.segments, scripts.segments_text);
  write_atomically(scripts.join, scripts.join_text);
  return scripts;
}

namespace {

// Runs a command line, returning its stdout; throws with its output when it fails.
std::string run_sbatch(const std::string& command, const fs::path& script) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) throw Error(script.string(), "cannot run sbatch");
  std::string out;
  char buffer[512];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  const int status = pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (status != 0) throw Error(script.string(), "sbatch failed: " + out);
  // --parsable: "ID" or "ID;cluster".
  const std::string id = out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
  return id.substr(0, id.find(';'));
}

}  // namespace

std::pair<std::string, std::string> submit_slurm(const SlurmScripts& scripts) {
  const std::string array =
      run_sbatch("sbatch --parsable " + shell_quote(scripts.segments.string()), scripts.segments);
  const std::string join = run_sbatch(
      "sbatch --parsable --dependency=afterok:" + array + " " + shell_quote(scripts.join.string()),
      scripts.join);
  return {array, join};
}

std::pair<fs::path, std::string> write_kubernetes_manifest(const fs::path& manifest_path,
                                                           const KubernetesOptions& options) {
  const json m = load_manifest(manifest_path);
  const fs::path manifest = fs::absolute(manifest_path);
  const fs::path job = m["job_folder"].get<std::string>();
  // The shared volume holds the inputs, the job folder and the outputs, mounted at the same
  // path as here so the manifest's paths hold in every pod.
  fs::path mount = options.mount;
  if (mount.empty()) {
    std::vector<fs::path> paths = {job};
    for (const json& file : m["files"]) {
      paths.push_back(fs::path(file["input"].get<std::string>()).parent_path());
      paths.push_back(fs::path(file["output"].get<std::string>()).parent_path());
    }
    mount = paths.front();
    for (const fs::path& p : paths) {
      fs::path common;
      auto a = mount.begin(), b = p.begin();
      for (; a != mount.end() && b != p.end() && *a == *b; ++a, ++b) common /= *a;
      mount = common;
    }
  }
  std::string name = options.name;
  if (name.empty()) {
    name = "upframe-";
    for (char c : job.filename().string())
      name += std::isalnum(static_cast<unsigned char>(c)) ? char(std::tolower(c)) : '-';
    while (name.size() > 40 || name.back() == '-') name.pop_back();
  }
  const size_t count = m["segments"].size();
  const int parallelism = options.parallelism > 0 ? options.parallelism : int(count);
  auto quoted = [](const std::string& s) { return json(s).dump(); };  // JSON strings are YAML
  auto pod = [&](const std::string& args, bool gpu) {
    std::string volume =
        options.claim.empty()
            ? "        - name: shared\n          hostPath:\n            path: " + quoted(mount) +
                  "\n"
            : "        - name: shared\n          persistentVolumeClaim:\n            claimName: " +
                  quoted(options.claim) + "\n";
    std::string resources;
    if (gpu && !options.gpu.empty())
      resources = "          resources:\n            limits:\n              nvidia.com/gpu: " +
                  quoted(options.gpu) + "\n";
    return "      restartPolicy: Never\n"
           "      containers:\n"
           "        - name: upframe\n"
           "          image: " +
           quoted(options.image) + "\n          command: [" + quoted(options.upframe) + ", " +
           args + "]\n" + resources +
           "          volumeMounts:\n"
           "            - name: shared\n"
           "              mountPath: " +
           quoted(mount) + "\n      volumes:\n" + volume;
  };
  const std::string text =
      "# upframe: one pod per segment (JOB_COMPLETION_INDEX is the segment index), then the join.\n"
      "# Kubernetes has no dependency between Jobs: the join Job waits for the segments itself.\n"
      "apiVersion: batch/v1\n"
      "kind: Job\n"
      "metadata:\n"
      "  name: " +
      quoted(name + "-segments") +
      "\n"
      "spec:\n"
      "  completionMode: Indexed\n"
      "  completions: " +
      std::to_string(count) + "\n  parallelism: " + std::to_string(parallelism) +
      "\n  backoffLimitPerIndex: 3\n"
      "  template:\n"
      "    spec:\n" +
      pod(quoted("run-segment") + ", " + quoted(manifest.string()), true) +
      "---\n"
      "apiVersion: batch/v1\n"
      "kind: Job\n"
      "metadata:\n"
      "  name: " +
      quoted(name + "-join") +
      "\n"
      "spec:\n"
      "  completions: 1\n"
      "  backoffLimit: 2\n"
      "  template:\n"
      "    spec:\n" +
      pod(quoted("join") + ", " + quoted(manifest.string()) + ", " + quoted("--wait") + ", " +
              quoted("86400") + ", " + quoted("--stats") + ", " +
              quoted((job / "stats.json").string()),
          false);
  const fs::path path = job / "k8s" / "job.yaml";
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  write_atomically(path, text);
  return {path, text};
}

}  // namespace upframe::cluster
