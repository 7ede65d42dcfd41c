// The page of `upframe serve` driven by a real headless browser (Debian's chromium through
// chromium-driver, W3C WebDriver): jobs with the duplicate toggle off and on, their counts
// against the CLI's --stats, Stop and Resume, the before/after view. With
// UPFRAME_WEB_SCREENSHOTS=DIR it also saves the screenshots docs/web/ shows.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

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

TEST(WebBrowser, JobsProgressStatsStopResumeAndBeforeAfter) {
  if (!Browser::available())
    GTEST_SKIP() << "/usr/bin/chromium or /usr/bin/chromedriver missing (tools/install_deps.sh "
                    "installs them)";
  const fs::path base = scratch_dir("web-browser");
  const fs::path root = base / "root";
  fs::create_directories(root);
  // Animation on twos: about half the frames are duplicates.
  synth::encode_clip(root / "clip.mp4", synth::on_twos_clip({64, 36, 48}));
  // Long enough that Stop lands mid-job whatever the machine's speed (never run to the end).
  synth::encode_clip(root / "long.mp4", 1200, [](int index) {
    return synth::render_frame(32, 18, AV_PIX_FMT_YUV420P, [index](int x, int y) {
      return synth::scene_luma(3, x + index, y);
    });
  });
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

  // 2. Toggle on: the duplicates the CLI finds on the same clip.
  browser.click("#toggle-skip-duplicates");
  browser.type("#output", "on.mp4");
  browser.click("#start");
  ASSERT_TRUE(wait_job_state(browser, 2, "done", 60s)) << browser.text("#job-error");
  EXPECT_EQ(page_int(browser, "unique"), cli_on["unique_frames"].get<int>());
  EXPECT_EQ(page_int(browser, "duplicates"), cli_on["duplicate_frames"].get<int>());
  EXPECT_NE(browser.text("#log").find("job 2: done"), std::string::npos);
  save_screenshot(browser, "done");

  // 3. Stop a running job, then Resume it from the page (it starts from the finished
  // segments; stopped again, since the clip is long enough for any machine's speed).
  choose_input(browser, "long.mp4");
  browser.click("#model option[value='realesr-animevideov3']");
  browser.click("#advanced summary");
  browser.type("#segment_frames", "5");
  browser.type("#output", "long_web.mp4");
  browser.click("#start");
  const std::string frames_done =
      "parseInt(document.getElementById('frames-text').textContent.split(' ')[1])";
  ASSERT_TRUE(browser.wait_for(
      "document.getElementById('job-id').textContent == '3' && " + frames_done + " >= 7", 120s))
      << browser.text("#job-state") << browser.text("#job-error");
  save_screenshot(browser, "running");
  EXPECT_EQ(serve.get_json("/api/jobs/3")["request"]["segment_frames"], "5");
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

}  // namespace
}  // namespace upframe::test
