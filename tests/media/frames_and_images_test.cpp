#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include "media_test_util.hpp"
#include "upframe/error.hpp"
#include "upframe/media/image_io.hpp"

namespace upframe::test {
namespace {

std::set<std::string> file_names(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename());
  return names;
}

std::vector<std::string> lines_of(const fs::path& file) {
  std::istringstream in(read_file(file));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Writes the first `count` frames of `input`; frames 3 and 7 are duplicates of 2 and 6.
void write_frames(const fs::path& input, const fs::path& folder, FramesFolderOptions options,
                  int count = 10) {
  VideoDecoder decoder(input);
  auto sink = make_frames_folder_sink(folder, decoder.info(), options);
  for (int i = 0; i < count; ++i) {
    auto frame = decoder.next();
    ASSERT_TRUE(frame);
    if (i == 3 || i == 7)
      sink->write_duplicate(i, i - 1, *frame, frame->pts());
    else
      sink->write_unique(i, *frame, frame->pts());
  }
  sink->finish();
}

class FramesFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = scratch_dir("frames");
    input_ = dir_ / "in.mp4";
    ffmpeg("-f lavfi -i testsrc2=size=160x90:rate=25:duration=1 -c:v libx264 " +
           quote(input_.string()));
  }
  fs::path dir_, input_;
};

TEST_F(FramesFolder, PngNamesTimestampsAndDuplicates) {
  fs::path folder = dir_ / "png";
  write_frames(input_, folder, {});
  std::set<std::string> expected = {"timestamps.csv"};
  for (int i = 1; i <= 10; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "%08d.png", i);
    expected.insert(name);
  }
  EXPECT_EQ(file_names(folder), expected);
  EXPECT_EQ(read_file(folder / "00000004.png"), read_file(folder / "00000003.png"));
  EXPECT_NE(read_file(folder / "00000003.png"), read_file(folder / "00000002.png"));
  auto lines = lines_of(folder / "timestamps.csv");
  ASSERT_EQ(lines.size(), 11u);
  EXPECT_EQ(lines[0], "index,pts_seconds");
  EXPECT_EQ(lines[1], "1,0.000000");
  EXPECT_EQ(lines[2], "2,0.040000");
  EXPECT_EQ(lines[10], "10,0.360000");
  Frame image = read_image(folder / "00000005.png");
  EXPECT_EQ(image.format(), AV_PIX_FMT_RGB24);
  EXPECT_EQ(image.width(), 160);
  EXPECT_EQ(image.height(), 90);
  // Nothing left beside the folder but the input.
  EXPECT_EQ(file_names(dir_), (std::set<std::string>{"in.mp4", "png"}));
}

TEST_F(FramesFolder, JpgAndWebp) {
  for (const char* format : {"jpg", "webp"}) {
    fs::path folder = dir_ / format;
    FramesFolderOptions options;
    options.format = format;
    options.quality = 80;
    write_frames(input_, folder, options, 5);
    std::string first = std::string("00000001.") + format;
    ASSERT_TRUE(fs::exists(folder / first)) << format;
    EXPECT_TRUE(fs::exists(folder / (std::string("00000005.") + format)));
    EXPECT_EQ(read_file(folder / (std::string("00000004.") + format)),
              read_file(folder / (std::string("00000003.") + format)));
    Frame image = read_image(folder / first);
    EXPECT_EQ(image.width(), 160) << format;
    EXPECT_EQ(image.height(), 90) << format;
  }
  // Lower quality, smaller file.
  fs::path low = dir_ / "low";
  FramesFolderOptions options;
  options.format = "jpg";
  options.quality = 10;
  write_frames(input_, low, options, 1);
  EXPECT_LT(fs::file_size(low / "00000001.jpg"), fs::file_size(dir_ / "jpg" / "00000001.jpg"));
}

TEST_F(FramesFolder, TenBitSourceGives16BitPng) {
  fs::path input = dir_ / "in10.mkv";
  ffmpeg("-f lavfi -i testsrc2=size=64x48:rate=25:duration=0.2 -pix_fmt yuv420p10le -c:v ffv1 " +
         quote(input.string()));
  fs::path folder = dir_ / "deep";
  write_frames(input, folder, {}, 5);
  EXPECT_EQ(read_image(folder / "00000001.png").format(), AV_PIX_FMT_RGB48BE);
}

TEST_F(FramesFolder, OverwriteReplacesOldFramesOnly) {
  fs::path folder = dir_ / "old";
  fs::create_directories(folder);
  for (int i = 1; i <= 20; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "%08d.png", i);
    write_text(folder / name, "old frame");
  }
  write_text(folder / "notes.txt", "keep me");
  EXPECT_THROW(write_frames(input_, folder, {}, 1), Error);  // not empty, no overwrite
  EXPECT_EQ(read_file(folder / "00000001.png"), "old frame");

  FramesFolderOptions options;
  options.overwrite = true;
  write_frames(input_, folder, options, 3);
  EXPECT_EQ(file_names(folder),
            (std::set<std::string>{"00000001.png", "00000002.png", "00000003.png", "timestamps.csv",
                                   "notes.txt"}));
  EXPECT_NE(read_file(folder / "00000001.png"), "old frame");
}

TEST_F(FramesFolder, AbortLeavesNothing) {
  fs::path folder = dir_ / "aborted";
  {
    VideoDecoder decoder(input_);
    auto sink = make_frames_folder_sink(folder, decoder.info(), {});
    for (int i = 0; i < 3; ++i) {
      auto frame = decoder.next();
      sink->write_unique(i, *frame, frame->pts());
    }
    sink->abort();
  }
  EXPECT_EQ(file_names(dir_), (std::set<std::string>{"in.mp4"}));
}

TEST_F(FramesFolder, UnknownFormatIsAnError) {
  VideoDecoder decoder(input_);
  FramesFolderOptions options;
  options.format = "gif";
  EXPECT_THROW(make_frames_folder_sink(dir_ / "x", decoder.info(), options), UsageError);
}

// A frame with a gradient and an alpha ramp (or, for 16-bit, wide values).
Frame pattern(AVPixelFormat format, int width = 48, int height = 32) {
  Frame frame = Frame::allocate(width, height, format);
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  int bytes_per_pixel = av_get_bits_per_pixel(desc) / 8;
  for (int y = 0; y < height; ++y) {
    uint8_t* row = frame.av()->data[0] + y * frame.av()->linesize[0];
    for (int x = 0; x < width * bytes_per_pixel; ++x)
      row[x] = static_cast<uint8_t>((x * 7 + y * 13 + (x % bytes_per_pixel) * 50) & 0xff);
  }
  return frame;
}

TEST(ImageIo, LosslessRoundTripKeepsAlpha) {
  fs::path dir = scratch_dir("images");
  struct Case {
    const char* file;
    AVPixelFormat format;
  };
  for (Case c : {Case{"rgba.png", AV_PIX_FMT_RGBA}, Case{"ya8.png", AV_PIX_FMT_YA8},
                 Case{"rgba64.png", AV_PIX_FMT_RGBA64BE}, Case{"rgb.png", AV_PIX_FMT_RGB24},
                 Case{"rgba.tiff", AV_PIX_FMT_RGBA}}) {
    Frame original = pattern(c.format);
    write_image(dir / c.file, original);
    Frame back = read_image(dir / c.file);
    EXPECT_EQ(back.format(), c.format) << c.file << ": " << av_get_pix_fmt_name(back.format());
    EXPECT_TRUE(same_pixels(original, back)) << c.file;
  }
  // Only the finished images are in the folder.
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) files += entry.is_regular_file();
  EXPECT_EQ(files, 5);
}

TEST(ImageIo, WebpKeepsAlpha) {
  fs::path dir = scratch_dir("images-webp");
  Frame original = Frame::allocate(64, 64, AV_PIX_FMT_RGBA);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) {
      uint8_t* p = original.av()->data[0] + y * original.av()->linesize[0] + 4 * x;
      p[0] = 200, p[1] = 100, p[2] = 50, p[3] = x < 32 ? 0 : 255;
    }
  write_image(dir / "a.webp", original, {}, 90);
  Frame back = read_image(dir / "a.webp");
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(back.format());
  ASSERT_TRUE(desc->flags & AV_PIX_FMT_FLAG_ALPHA) << av_get_pix_fmt_name(back.format());
  ASSERT_EQ(back.format(), AV_PIX_FMT_YUVA420P);
  const uint8_t* alpha = back.av()->data[3];
  EXPECT_LT(alpha[8], 10);
  EXPECT_GT(alpha[56], 245);
}

TEST(ImageIo, JpegAndBmpByExtensionOrFormat) {
  fs::path dir = scratch_dir("images-lossy");
  Frame original = pattern(AV_PIX_FMT_RGB24, 64, 48);
  write_image(dir / "a.jpg", original, {}, 90);
  Frame jpeg = read_image(dir / "a.jpg");
  EXPECT_EQ(jpeg.width(), 64);
  EXPECT_EQ(jpeg.format(), AV_PIX_FMT_YUVJ444P);
  write_image(dir / "picture.data", original, "bmp");
  Frame bmp = read_image(dir / "picture.data");
  EXPECT_EQ(bmp.height(), 48);
  EXPECT_EQ(read_file(dir / "picture.data").substr(0, 2), "BM");
}

// A grey picture to JPEG is a one-component grey JPEG (libjpeg; FFmpeg's mjpeg encoder writes
// YUV only), 8-bit and 16-bit grey alike, close to the original; by format name too.
TEST(ImageIo, GreyJpegStaysGrey) {
  fs::path dir = scratch_dir("images-grey-jpeg");
  Frame gray = Frame::allocate(64, 48, AV_PIX_FMT_GRAY8);
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x) gray.av()->data[0][y * gray.av()->linesize[0] + x] = uint8_t(3 * x + y);
  write_image(dir / "g.jpg", gray, {}, 95);
  Frame back = read_image(dir / "g.jpg");
  ASSERT_EQ(back.format(), AV_PIX_FMT_GRAY8);
  int worst = 0;
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x)
      worst = std::max(worst, std::abs(back.av()->data[0][y * back.av()->linesize[0] + x] -
                                       (3 * x + y)));
  EXPECT_LE(worst, 4);
  write_image(dir / "g16.data", pattern(AV_PIX_FMT_GRAY16LE), "jpeg");
  EXPECT_EQ(read_image(dir / "g16.data").format(), AV_PIX_FMT_GRAY8);
  // Grey with alpha is not plain grey: JPEG gets colour (and drops the alpha, with a warning).
  write_image(dir / "ya.jpg", pattern(AV_PIX_FMT_YA8));
  EXPECT_EQ(read_image(dir / "ya.jpg").format(), AV_PIX_FMT_YUVJ444P);
}

TEST(ImageIo, Errors) {
  fs::path dir = scratch_dir("images-errors");
  EXPECT_THROW(write_image(dir / "a.xyz", pattern(AV_PIX_FMT_RGB24)), UsageError);
  EXPECT_FALSE(fs::exists(dir / "a.xyz"));
  try {
    read_image(dir / "missing.png");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), (dir / "missing.png").string());
  }
  write_text(dir / "fake.png", "not a picture at all");
  EXPECT_THROW(read_image(dir / "fake.png"), Error);
}

}  // namespace
}  // namespace upframe::test
