// The page of `upframe serve` driven by a real headless browser (Debian's chromium through
// chromium-driver, W3C WebDriver): jobs with the duplicate toggle off and on, their counts
// against the CLI's --stats, Stop and Resume, the before/after view. With
// UPFRAME_WEB_SCREENSHOTS=DIR it also saves the screenshots docs/web/ shows.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "support/synth.hpp"
#include "support/test_support.hpp"
#include "web/web_test_util.hpp"

namespace upframe::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

void save_screenshot(Browser& browser, const std::string& name) {
  const char* dir = std::getenv("UPFRAME_WEB_SCREENSHOTS");
  if (!dir) return;
  // The bars' width transitions (0.3 s) end first.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  fs::create_directories(dir);
  std::ofstream(fs::path(dir) / (name + ".png"), std::ios::binary) << browser.screenshot();
}

json cli_stats(const fs::path& clip, const fs::path& out, const std::string& flags) {
  const fs::path stats = out.string() + ".json";
  CommandResult r =
      run_cli(quote(clip.string()) + " -o " + quote(out.string()) +
              " --model lanczos --quiet --stats " + quote(stats.string()) + " " + flags);
  if (r.exit_status != 0) throw std::runtime_error(r.stderr_text);
  return json::parse(read_file(stats));
}

const char* kNoBrowser =
    "/usr/bin/chromium or /usr/bin/chromedriver missing (tools/install_deps.sh installs them)";

int page_int(Browser& browser, const std::string& id) { return std::stoi(browser.text("#" + id)); }

// Waits until the progress panel shows job `id` in `state`.
bool wait_job_state(Browser& browser, int id, const std::string& state,
                    std::chrono::seconds timeout) {
  return browser.wait_for(
      "document.getElementById('job-id').textContent == '" + std::to_string(id) +
          "' && document.getElementById('job-state').textContent == '" + state + "'",
      timeout);
}

void choose_input(Browser& browser, const std::string& name) {
  const std::string css = "#files li[data-path$='/" + name + "']";
  ASSERT_TRUE(browser.wait_for("document.querySelector(\"" + css + "\")", 20s));
  browser.click(css);
  ASSERT_TRUE(browser.wait_for(
      "document.getElementById('input-path').value.endsWith('/" + name + "')", 5s));
}

// The text of an element of the Jobs table, read in one step: the page rebuilds the table
// every 2 s, so an element found first may be gone when its text is asked for.
std::string table_text(Browser& browser, const std::string& css) {
  const json text = browser.run("const e = document.querySelector('" + css +
                                "'); return e ? e.textContent : '';");
  return text.get<std::string>();
}

// Starts the long job (web_test_util.hpp) from the page, to long_web.mp4.
void start_long_job(Browser& browser) {
  choose_input(browser, "long.mp4");
  browser.click("#model option[value='realesr-animevideov3']");
  browser.click("#advanced summary");
  browser.type("#segment_frames", "5");
  browser.type("#output", "long_web.mp4");
  browser.click("#start");
}

TEST(WebBrowser, JobsProgressStatsStopResumeAndBeforeAfter) {
  if (!Browser::available()) GTEST_SKIP() << kNoBrowser;
  const fs::path base = scratch_dir("web-browser");
  const fs::path root = base / "root";
  fs::create_directories(root);
  // Animation on twos: about half the frames are duplicates.
  synth::encode_clip(root / "clip.mp4", synth::on_twos_clip({64, 36, 48}));
  // Long enough that Stop lands mid-job whatever the machine's speed (never run to the end).
  make_long_clip(root / "long.mp4");
  const json cli_off = cli_stats(root / "clip.mp4", base / "cli_off.mp4", "--no-skip-duplicates");
  const json cli_on = cli_stats(root / "clip.mp4", base / "cli_on.mp4", "--skip-duplicates");
  ASSERT_GT(cli_on["duplicate_frames"].get<int>(), 0);

  ServeProcess serve(root);
  Browser browser;
  browser.open(serve.url());
  choose_input(browser, "clip.mp4");
  ASSERT_TRUE(browser.wait_for("!document.getElementById('preview').disabled", 20s));
  save_screenshot(browser, "idle");
  EXPECT_EQ(browser.text("#preview-status"), "64x36, 48 frame(s), 24.00 fps");

  // 1. Duplicate toggle off: every frame is upscaled.
  browser.click("#model option[value='lanczos']");
  browser.click("#toggle-skip-duplicates");
  EXPECT_FALSE(
      browser.run("return document.getElementById('skip-duplicates').checked;").get<bool>());
  browser.type("#output", "off.mp4");
  browser.click("#start");
  ASSERT_TRUE(wait_job_state(browser, 1, "done", 60s)) << browser.text("#job-error") << serve.log();
  EXPECT_EQ(page_int(browser, "unique"), cli_off["unique_frames"].get<int>());
  EXPECT_EQ(page_int(browser, "duplicates"), cli_off["duplicate_frames"].get<int>());
  EXPECT_EQ(page_int(browser, "duplicates"), 0);
  EXPECT_EQ(browser.text("#frames-text"), "frames 48 / 48");
  // The stats at the end, with the per-stage chart (decode, detect, upscale, save, total).
  EXPECT_TRUE(browser.run("return !document.getElementById('stats').hidden;").get<bool>());
  EXPECT_EQ(browser.run("return document.querySelectorAll('#stats-chart rect').length;"), 5);
  EXPECT_TRUE(fs::exists(root / "off.mp4"));

  // 2. Toggle on: the duplicates the CLI finds on the same clip. Tile reuse unticked in the
  // advanced options (its own switch, --no-reuse-tiles), then ticked again.
  browser.click("#toggle-skip-duplicates");
  browser.click("#advanced summary");
  browser.click("#reuse-tiles");
  browser.type("#output", "on.mp4");
  browser.click("#start");
  ASSERT_TRUE(wait_job_state(browser, 2, "done", 60s)) << browser.text("#job-error");
  EXPECT_EQ(serve.get_json("/api/jobs/2")["request"]["reuse_tiles"], false);
  browser.click("#reuse-tiles");
  browser.click("#advanced summary");
  EXPECT_EQ(page_int(browser, "unique"), cli_on["unique_frames"].get<int>());
  EXPECT_EQ(page_int(browser, "duplicates"), cli_on["duplicate_frames"].get<int>());
  EXPECT_NE(browser.text("#log").find("job 2: done"), std::string::npos);
  save_screenshot(browser, "done");

  // 3. Stop a running job, then Resume it from the page (it starts from the finished
  // segments; stopped again, since the clip is long enough for any machine's speed).
  start_long_job(browser);
  const std::string frames_done =
      "parseInt(document.getElementById('frames-text').textContent.split(' ')[1])";
  ASSERT_TRUE(browser.wait_for(
      "document.getElementById('job-id').textContent == '3' && " + frames_done + " >= 7", 120s))
      << browser.text("#job-state") << browser.text("#job-error");
  save_screenshot(browser, "running");
  EXPECT_EQ(serve.get_json("/api/jobs/3")["request"]["segment_frames"], "5");
  EXPECT_EQ(serve.get_json("/api/jobs/3")["request"]["reuse_tiles"], true);  // the default
  EXPECT_EQ(browser.text("#job-state"), "running");
  browser.click("#stop");
  ASSERT_TRUE(wait_job_state(browser, 3, "cancelled", 60s));
  const fs::path partial = root / "long_web.mp4.upframe-partial";
  EXPECT_TRUE(fs::exists(partial / "manifest.json"));
  EXPECT_FALSE(fs::exists(root / "long_web.mp4"));
  EXPECT_NE(browser.text("#job-error").find("partial run is kept"), std::string::npos);
  ASSERT_TRUE(browser.wait_for("document.getElementById('resume')", 10s));
  browser.click("#resume");
  ASSERT_TRUE(
      browser.wait_for("document.getElementById('job-id').textContent == '4' && "
                       "document.getElementById('log').textContent.includes("
                       "'resuming the partial run')",
                       60s))
      << browser.text("#log");
  EXPECT_EQ(browser.text("#log").find("(0 finished segment(s))"), std::string::npos);
  if (browser.text("#job-state") == "running") browser.click("#stop");
  ASSERT_TRUE(browser.wait_for(
      "['cancelled', 'done'].includes(document.getElementById('job-state').textContent)", 60s));

  // 4. Before/after of frame 10 with the neural model, and the split dragged to a quarter.
  choose_input(browser, "clip.mp4");
  ASSERT_TRUE(browser.wait_for("!document.getElementById('preview').disabled", 20s));
  browser.run(
      "const s = document.getElementById('frame-slider'); s.value = 10;"
      "s.dispatchEvent(new Event('input')); return true;");
  EXPECT_EQ(browser.text("#frame-label"), "frame 10 (0.42 s)");
  browser.click("#preview");
  ASSERT_TRUE(
      browser.wait_for("!document.getElementById('compare').hidden && "
                       "document.getElementById('after').naturalWidth == 128",
                       60s))
      << browser.text("#preview-status");
  EXPECT_EQ(browser.run("return document.getElementById('before').naturalWidth;"), 64);
  EXPECT_NE(browser.text("#preview-status").find("64x36 \u2192 128x72 (realesr-animevideov3)"),
            std::string::npos);
  const int width =
      browser.run("return document.getElementById('compare').clientWidth;").get<int>();
  browser.drag("#compare", 0, -width / 4);
  const double split =
      browser.run("return parseFloat(document.getElementById('before-clip').style.width);")
          .get<double>();
  EXPECT_NEAR(split, 25.0, 2.0);
  browser.run("document.getElementById('preview-panel').scrollIntoView(); return true;");
  save_screenshot(browser, "before-after");
}

// What a new user met on the page (issue 22): folder rows, upframe's own partial folders, an
// image job's progress, a batch with a bad file, the Jobs card with Stop buttons, a preview
// while a job runs, a reload, and a server killed while a job runs then started again.
TEST(WebBrowser, FoldersImagesFailuresReloadAndRestart) {
  if (!Browser::available()) GTEST_SKIP() << kNoBrowser;
  const fs::path base = scratch_dir("web-browser-restart");
  const fs::path root = base / "root";
  const fs::path state = base / "state";
  fs::create_directories(root / "batch");
  fs::create_directories(root / "old.mp4.upframe-partial");  // a partial run: not an input
  synth::encode_clip(root / "clip.mp4", synth::on_twos_clip({64, 36, 24}));
  fs::copy_file(root / "clip.mp4", root / "batch" / "good.mp4");
  std::ofstream(root / "batch" / "broken.mp4") << "not a video at all";
  CommandResult still = run_command("ffmpeg -v error -i " + quote((root / "clip.mp4").string()) +
                                    " -frames:v 1 " + quote((root / "still.png").string()));
  ASSERT_EQ(still.exit_status, 0) << still.stderr_text;
  make_long_clip(root / "long.mp4");

  auto serve = std::make_unique<ServeProcess>(root, std::vector<std::string>{}, state);
  Browser browser;
  browser.open(serve->url());
  ASSERT_TRUE(browser.wait_for("document.querySelector('#files li.dir')", 20s));

  // 1. Folder rows: the name at the row's left, after a folder drawn in CSS (no emoji a font
  // may lack), the row one line high like a file's; the partial folder is not listed.
  const json rows = browser.run(R"(
    const dir = document.querySelector('#files li.dir'), file = document.querySelector('#files li.media');
    const name = dir.querySelector('.name');
    return {names: [...document.querySelectorAll('#files li')].map((li) => li.textContent),
            name_offset: name.getBoundingClientRect().left - dir.getBoundingClientRect().left,
            dir_height: dir.getBoundingClientRect().height,
            file_height: file.getBoundingClientRect().height,
            icon: getComputedStyle(dir, '::before').content};)");
  EXPECT_EQ(rows["names"][0], "batch") << rows.dump();
  for (const auto& name : rows["names"])
    EXPECT_EQ(name.get<std::string>().find("upframe-partial"), std::string::npos) << rows.dump();
  EXPECT_LT(rows["name_offset"].get<double>(), 40) << rows.dump();
  EXPECT_LE(rows["dir_height"].get<double>(), rows["file_height"].get<double>() + 1) << rows.dump();
  EXPECT_EQ(rows["icon"], "\"\"") << rows.dump();
  save_screenshot(browser, "folders");

  // 2. An image job shows its progress (one frame of one), in the card and the Jobs table.
  choose_input(browser, "still.png");
  browser.click("#model option[value='lanczos']");
  browser.click("#start");
  ASSERT_TRUE(wait_job_state(browser, 1, "done", 60s)) << browser.text("#job-error");
  EXPECT_EQ(browser.text("#frames-text"), "frames 1 / 1");
  ASSERT_TRUE(browser.wait_for(
      "document.querySelector('#job-row-1 td:nth-child(4)').textContent == '1/1'", 10s))
      << table_text(browser, "#job-row-1");

  // 3. A batch with a file that fails: not a quiet "done", the file and its error are shown.
  browser.click("#files li[data-path$='/batch']");
  ASSERT_TRUE(
      browser.wait_for("document.getElementById('cwd').textContent.endsWith('/batch')", 20s));
  browser.click("#use-folder");
  browser.click("#start");
  ASSERT_TRUE(wait_job_state(browser, 2, "done, 1 failed", 60s)) << browser.text("#job-state");
  EXPECT_NE(browser.text("#job-error").find("1 of 2 files failed"), std::string::npos);
  EXPECT_EQ(browser.text("#job-failures").rfind("broken.mp4: not a media file", 0), 0u)
      << browser.text("#job-failures");
  EXPECT_EQ(browser.text("#preview-status").find("no preview"), std::string::npos)
      << browser.text("#preview-status");
  EXPECT_EQ(table_text(browser, "#job-row-2 td:nth-child(3)"), "done, 1 failed");
  save_screenshot(browser, "batch-failed");

  // 4. A long job running and one queued behind it: their Stop buttons stay inside the Jobs
  // card.
  browser.click("#up");
  start_long_job(browser);
  choose_input(browser, "clip.mp4");
  browser.click("#model option[value='lanczos']");
  browser.type("#segment_frames", "");
  browser.type("#output", "queued.mp4");
  browser.click("#start");
  ASSERT_TRUE(serve->wait_job(3, some_segments_done, 120s)["state"] == "running");
  ASSERT_TRUE(browser.wait_for("document.querySelectorAll('#jobs button').length == 2", 10s));
  const json overflow = browser.run(R"(
    const card = document.getElementById('queue-panel').getBoundingClientRect();
    return [...document.querySelectorAll('#queue-panel button, #queue-panel td')]
        .filter((e) => e.getBoundingClientRect().right > card.right - 1)
        .map((e) => e.outerHTML);)");
  EXPECT_EQ(overflow.size(), 0u) << overflow.dump();

  // 5. A preview while the job runs: its log lines are not the job's.
  const size_t lines_before = serve->get_json("/api/jobs/3")["log"].size();
  ASSERT_TRUE(browser.wait_for("!document.getElementById('preview').disabled", 20s));
  browser.click("#model option[value='realesr-animevideov3']");
  browser.click("#preview");
  ASSERT_TRUE(browser.wait_for("!document.getElementById('compare').hidden", 120s))
      << browser.text("#preview-status");
  EXPECT_NE(serve->log().find("preview: "), std::string::npos) << serve->log();
  const std::string job_log = log_text(serve->get_json("/api/jobs/3"));
  EXPECT_EQ(job_log.find("preview: "), std::string::npos) << job_log;
  EXPECT_GE(serve->get_json("/api/jobs/3")["log"].size(), lines_before);

  // 6. A reload shows the running job, not the queued one after it.
  browser.open(serve->url());
  ASSERT_TRUE(wait_job_state(browser, 3, "running", 30s))
      << browser.text("#job-id") << " " << browser.text("#job-state");
  save_screenshot(browser, "queue");

  // 7. The server dies with the job running; started again, the finished jobs are there, the
  // queued one runs, and the killed one is offered for Resume.
  const fs::path manifest = root / "long_web.mp4.upframe-partial" / "manifest.json";
  for (int i = 0; i < 600 && !fs::exists(manifest); ++i) std::this_thread::sleep_for(100ms);
  // The job's progress is saved every 2 s while it runs: let one save pass after the 7 frames
  // seen above, so the kill finds them saved (a functional wait, not a speed check).
  std::this_thread::sleep_for(2500ms);
  ASSERT_EQ(serve->get_json("/api/jobs/3")["state"], "running");
  EXPECT_EQ(serve->stop(SIGKILL), 128 + SIGKILL);
  serve = std::make_unique<ServeProcess>(root, std::vector<std::string>{}, state);
  browser.open(serve->url());
  ASSERT_TRUE(browser.wait_for("document.getElementById('job-row-3')", 20s));
  EXPECT_EQ(table_text(browser, "#job-row-1 td:nth-child(3)"), "done");
  EXPECT_EQ(table_text(browser, "#job-row-2 td:nth-child(3)"), "done, 1 failed");
  EXPECT_EQ(table_text(browser, "#job-row-3 td:nth-child(3)"), "cancelled");
  // Where it got to (kept every 2 s while it ran), and its log.
  const std::string kept = table_text(browser, "#job-row-3 td:nth-child(4)");
  ASSERT_FALSE(kept.empty() || !std::isdigit(static_cast<unsigned char>(kept[0])))
      << "progress cell: '" << kept << "', row: " << table_text(browser, "#job-row-3");
  EXPECT_GE(std::stoi(kept), 7) << table_text(browser, "#job-row-3");
  ASSERT_TRUE(browser.wait_for(
      "document.querySelector('#job-row-4 td:nth-child(3)').textContent == 'done'", 60s))
      << table_text(browser, "#job-row-4");
  EXPECT_TRUE(fs::exists(root / "queued.mp4"));
  // (Through the page's script: the table is rebuilt every 2 s, a found element may go.)
  browser.run("document.querySelector('#job-row-3 td.input').click(); return true;");
  ASSERT_TRUE(wait_job_state(browser, 3, "cancelled", 20s));
  EXPECT_NE(browser.text("#job-error").find("the server stopped while this job ran"),
            std::string::npos)
      << browser.text("#job-error");
  EXPECT_NE(browser.text("#log").find("job 3: "), std::string::npos) << browser.text("#log");
  ASSERT_TRUE(browser.wait_for("document.getElementById('resume')", 10s));
  save_screenshot(browser, "after-restart");
  browser.click("#resume");
  ASSERT_TRUE(
      browser.wait_for("document.getElementById('job-id').textContent == '5' && "
                       "document.getElementById('log').textContent.includes("
                       "'resuming the partial run')",
                       60s))
      << browser.text("#log");
  if (browser.text("#job-state") == "running") browser.click("#stop");
  ASSERT_TRUE(browser.wait_for(
      "['cancelled', 'done'].includes(document.getElementById('job-state').textContent)", 60s));
}

// A model file uploaded through the page: a malicious pickle refused with its one line shown
// and nothing kept, then a real .pth fixture kept, listed with what model-info says, chosen,
// and a job run with it; a broken file in the models folder is listed with its error.
TEST(WebBrowser, ModelUploadThenAJobWithIt) {
  if (!Browser::available()) GTEST_SKIP() << kNoBrowser;
  const fs::path base = scratch_dir("web-browser-models");
  const fs::path root = base / "root";
  const fs::path pytorch = source_dir() / "tests/models/pytorch";
  fs::create_directories(root);
  fs::copy_file(pytorch / "input_32x18.png", root / "in.png");
  const fs::path user = base / "data" / "upframe" / "models";
  fs::create_directories(user);
  std::ofstream(user / "broken.pth") << "not a model";
  ServeProcess serve(root);
  ASSERT_EQ(serve.user_models_dir(), user);
  Browser browser;
  browser.open(serve.url());
  ASSERT_TRUE(
      browser.wait_for("document.querySelector(\"#model-list li[data-file='broken.pth']\")", 20s));
  // The row names the file, its text is the readers' error.
  const json broken = serve.get_json("/api/models")["models"].back();
  ASSERT_EQ(broken["file"], "broken.pth");
  EXPECT_EQ((user / "broken.pth").string() + ": " +
                browser.text("#model-list li[data-file='broken.pth'] .info"),
            broken["error"])
      << browser.text("#model-list");
  EXPECT_TRUE(browser
                  .run("return document.querySelector(\"#model option[value='broken']\")"
                       ".disabled;")
                  .get<bool>());
  EXPECT_EQ(browser.run("return document.getElementById('model').value;"), "realesr-animevideov3");

  browser.attach_file("#model-file", source_dir() / "tests/models/weights/evil_zip.pth");
  browser.click("#model-upload");
  ASSERT_TRUE(
      browser.wait_for("document.getElementById('model-upload-status').className == 'error'", 30s))
      << browser.text("#model-upload-status");
  EXPECT_EQ(browser.text("#model-upload-status"),
            "evil_zip.pth: refused pickle GLOBAL 'posix.system': only tensors and containers are "
            "loaded from PyTorch files");
  std::vector<std::string> kept;
  for (const auto& e : fs::directory_iterator(user)) kept.push_back(e.path().filename());
  EXPECT_EQ(kept, std::vector<std::string>{"broken.pth"});

  browser.attach_file("#model-file", pytorch / "compact-x2.pth");
  browser.click("#model-upload");
  ASSERT_TRUE(browser.wait_for(
      "document.getElementById('model-upload-status').textContent.includes('chosen')", 30s))
      << browser.text("#model-upload-status");
  EXPECT_EQ(read_file(user / "compact-x2.pth"), read_file(pytorch / "compact-x2.pth"));
  EXPECT_EQ(browser.text("#model-list li[data-file='compact-x2.pth'] .info")
                .rfind("Compact, x2, 6 convolutions", 0),
            0u)
      << browser.text("#model-list");
  EXPECT_EQ(browser.run("return document.getElementById('model').value;"), "compact");
  EXPECT_EQ(browser.run("return document.getElementById('scale').value;"), "2");
  save_screenshot(browser, "models");

  choose_input(browser, "in.png");
  browser.click("#start");
  ASSERT_TRUE(wait_job_state(browser, 1, "done", 120s)) << browser.text("#job-error");
  const json job = serve.get_json("/api/jobs/1");
  EXPECT_EQ(job["request"]["model"], "compact") << job.dump();
  EXPECT_EQ(serve.get_json("/api/info?path=in_x2.png")["width"], 64);
}

}  // namespace
}  // namespace upframe::test
