// NVDEC without FFmpeg, for the device-check kit: the driver's parser and decoder through the
// Video Codec API (nv-codec-headers' loader opens libcuda.so.1 and libnvcuvid.so.1 at run time).
// Kept in its own file: the driver API declarations of dynlink_cuda.h and the CUDA runtime's
// headers are not meant to meet in one translation unit.
#include "device-check/nvdec_decode.hpp"

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "ffnvcodec/dynlink_loader.h"

namespace upframe::device_check {

namespace {

struct Decoding {
  CudaFunctions* cu = nullptr;
  CuvidFunctions* cv = nullptr;
  CUcontext context = nullptr;
  CUvideoctxlock lock = nullptr;
  CUvideodecoder decoder = nullptr;
  int left = 0, top = 0, width = 0, height = 0, surface_height = 0, bytes_per_sample = 1;
  bool chroma444 = false;
  bool unsupported = false;  // cuvidGetDecoderCaps said no
  std::vector<uint8_t>* frames = nullptr;
  int count = 0;
  std::string error;  // the first failure inside a callback
};

std::string cu_error(CudaFunctions* cu, CUresult r) {
  const char* name = nullptr;
  if (cu && cu->cuGetErrorName) cu->cuGetErrorName(r, &name);
  return name ? name : "CUDA driver error " + std::to_string(int(r));
}

void check(Decoding& d, CUresult r, const char* what) {
  if (r != CUDA_SUCCESS) throw std::runtime_error(std::string(what) + ": " + cu_error(d.cu, r));
}

// The parser found a sequence header: check the card decodes it, create the decoder. Returns
// the surfaces it needs. The decoder's surfaces are the coded size (as FFmpeg's nvdec and the
// Video Codec SDK's sample make them); the display rectangle is cut out when copying, so odd
// display sizes keep their last row and column.
int CUDAAPI on_sequence(void* user, CUVIDEOFORMAT* format) {
  auto& d = *static_cast<Decoding*>(user);
  if (d.decoder) return 1;  // one sequence in these streams
  const bool deep = format->bit_depth_luma_minus8 > 0;
  d.chroma444 = format->chroma_format == cudaVideoChromaFormat_444;
  if (d.cv->cuvidGetDecoderCaps) {
    CUVIDDECODECAPS caps;
    std::memset(&caps, 0, sizeof caps);
    caps.eCodecType = format->codec;
    caps.eChromaFormat = format->chroma_format;
    caps.nBitDepthMinus8 = format->bit_depth_luma_minus8;
    if (d.cv->cuvidGetDecoderCaps(&caps) == CUDA_SUCCESS && !caps.bIsSupported) {
      d.unsupported = true;
      d.error = "this card's NVDEC does not decode the stream's format (cuvidGetDecoderCaps)";
      return 0;
    }
  }
  CUVIDDECODECREATEINFO info;
  std::memset(&info, 0, sizeof info);
  info.CodecType = format->codec;
  info.ChromaFormat = format->chroma_format;
  info.bitDepthMinus8 = format->bit_depth_luma_minus8;
  info.OutputFormat =
      d.chroma444 ? (deep ? cudaVideoSurfaceFormat_YUV444_16Bit : cudaVideoSurfaceFormat_YUV444)
                  : (deep ? cudaVideoSurfaceFormat_P016 : cudaVideoSurfaceFormat_NV12);
  info.DeinterlaceMode = cudaVideoDeinterlaceMode_Weave;
  info.ulWidth = format->coded_width;
  info.ulHeight = format->coded_height;
  info.ulMaxWidth = format->coded_width;
  info.ulMaxHeight = format->coded_height;
  info.ulTargetWidth = format->coded_width;
  info.ulTargetHeight = format->coded_height;
  info.ulNumDecodeSurfaces = format->min_num_decode_surfaces + 4;
  info.ulNumOutputSurfaces = 2;
  info.ulCreationFlags = cudaVideoCreate_PreferCUVID;
  info.vidLock = d.lock;
  d.left = format->display_area.left;
  d.top = format->display_area.top;
  d.width = format->display_area.right - format->display_area.left;
  d.height = format->display_area.bottom - format->display_area.top;
  d.surface_height = int(format->coded_height);
  d.bytes_per_sample = deep ? 2 : 1;
  const CUresult r = d.cv->cuvidCreateDecoder(&d.decoder, &info);
  if (r != CUDA_SUCCESS) {
    d.error = "cuvidCreateDecoder: " + cu_error(d.cu, r);
    return 0;
  }
  return int(info.ulNumDecodeSurfaces);
}

int CUDAAPI on_decode(void* user, CUVIDPICPARAMS* picture) {
  auto& d = *static_cast<Decoding*>(user);
  const CUresult r = d.cv->cuvidDecodePicture(d.decoder, picture);
  if (r != CUDA_SUCCESS && d.error.empty()) d.error = "cuvidDecodePicture: " + cu_error(d.cu, r);
  return r == CUDA_SUCCESS;
}

// A picture is ready in display order: map it, copy its planes out.
int CUDAAPI on_display(void* user, CUVIDPARSERDISPINFO* display) {
  auto& d = *static_cast<Decoding*>(user);
  if (!display) return 1;  // end of stream
  CUVIDPROCPARAMS params;
  std::memset(&params, 0, sizeof params);
  params.progressive_frame = display->progressive_frame;
  params.top_field_first = display->top_field_first;
  CUdeviceptr surface = 0;
  unsigned int pitch = 0;
  CUresult r =
      d.cv->cuvidMapVideoFrame(d.decoder, display->picture_index, &surface, &pitch, &params);
  if (r != CUDA_SUCCESS) {
    if (d.error.empty()) d.error = "cuvidMapVideoFrame: " + cu_error(d.cu, r);
    return 0;
  }
  // The display rectangle of each plane, rows packed: 4:2:0 has (w+1)/2 CbCr pairs a row and
  // (h+1)/2 chroma rows; the chroma plane(s) follow the luma rows of the (even) surface height.
  const int bps = d.bytes_per_sample;
  const int chroma_w = (d.width + 1) / 2, chroma_h = (d.height + 1) / 2;
  const int planes = d.chroma444 ? 3 : 2;
  const size_t plane_stride = size_t(pitch) * ((d.surface_height + 1) & ~1);
  size_t row_bytes[3], rows[3], source[3];
  for (int p = 0; p < planes; ++p) {
    const bool chroma = p > 0 && !d.chroma444;
    row_bytes[p] = size_t(chroma ? 2 * chroma_w : d.width) * bps;
    rows[p] = size_t(chroma ? chroma_h : d.height);
    const size_t top = chroma ? size_t(d.top / 2) : size_t(d.top);
    const size_t left = size_t(chroma ? d.left / 2 * 2 : d.left) * bps;
    source[p] = plane_stride * p + top * pitch + left;
  }
  size_t at = d.frames->size();
  size_t total = 0;
  for (int p = 0; p < planes; ++p) total += row_bytes[p] * rows[p];
  d.frames->resize(at + total);
  for (int plane = 0; plane < planes && r == CUDA_SUCCESS; ++plane) {
    CUDA_MEMCPY2D copy;
    std::memset(&copy, 0, sizeof copy);
    copy.srcMemoryType = CU_MEMORYTYPE_DEVICE;
    copy.srcDevice = surface + source[plane];
    copy.srcPitch = pitch;
    copy.dstMemoryType = CU_MEMORYTYPE_HOST;
    copy.dstHost = d.frames->data() + at;
    copy.dstPitch = row_bytes[plane];
    copy.WidthInBytes = row_bytes[plane];
    copy.Height = rows[plane];
    r = d.cu->cuMemcpy2D(&copy);
    at += row_bytes[plane] * rows[plane];
  }
  d.cv->cuvidUnmapVideoFrame(d.decoder, surface);
  if (r != CUDA_SUCCESS) {
    if (d.error.empty()) d.error = "copying a decoded frame: " + cu_error(d.cu, r);
    return 0;
  }
  ++d.count;
  return 1;
}

}  // namespace

std::vector<uint8_t> nvdec_decode(const std::vector<uint8_t>& stream, bool hevc, int* frame_count,
                                  bool* unsupported) {
  Decoding d;
  std::vector<uint8_t> frames;
  d.frames = &frames;
  if (cuda_load_functions(&d.cu, nullptr) < 0) throw std::runtime_error("libcuda.so.1 not loaded");
  if (cuvid_load_functions(&d.cv, nullptr) < 0) {
    cuda_free_functions(&d.cu);
    throw std::runtime_error("libnvcuvid.so.1 (the driver's NVDEC library) not loaded");
  }
  CUvideoparser parser = nullptr;
  CUdevice device = 0;
  std::string failure;
  try {
    check(d, d.cu->cuInit(0), "cuInit");
    check(d, d.cu->cuDeviceGet(&device, 0), "cuDeviceGet");
    // The primary context: the one the CUDA runtime (and upframe's pipeline) uses.
    check(d, d.cu->cuDevicePrimaryCtxRetain(&d.context, device), "cuDevicePrimaryCtxRetain");
    check(d, d.cu->cuCtxPushCurrent(d.context), "cuCtxPushCurrent");
    check(d, d.cv->cuvidCtxLockCreate(&d.lock, d.context), "cuvidCtxLockCreate");
    CUVIDPARSERPARAMS params;
    std::memset(&params, 0, sizeof params);
    params.CodecType = hevc ? cudaVideoCodec_HEVC : cudaVideoCodec_H264;
    params.ulMaxNumDecodeSurfaces = 1;  // raised by on_sequence's return value
    params.ulMaxDisplayDelay = 0;
    params.pUserData = &d;
    params.pfnSequenceCallback = on_sequence;
    params.pfnDecodePicture = on_decode;
    params.pfnDisplayPicture = on_display;
    check(d, d.cv->cuvidCreateVideoParser(&parser, &params), "cuvidCreateVideoParser");
    CUVIDSOURCEDATAPACKET packet;
    std::memset(&packet, 0, sizeof packet);
    packet.payload = stream.data();
    packet.payload_size = stream.size();
    check(d, d.cv->cuvidParseVideoData(parser, &packet), "cuvidParseVideoData");
    std::memset(&packet, 0, sizeof packet);
    packet.flags = CUVID_PKT_ENDOFSTREAM;
    check(d, d.cv->cuvidParseVideoData(parser, &packet), "cuvidParseVideoData (end of stream)");
    if (!d.error.empty()) throw std::runtime_error(d.error);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (parser) d.cv->cuvidDestroyVideoParser(parser);
  if (d.decoder) d.cv->cuvidDestroyDecoder(d.decoder);
  if (d.lock) d.cv->cuvidCtxLockDestroy(d.lock);
  if (d.context) {
    CUcontext popped = nullptr;
    d.cu->cuCtxPopCurrent(&popped);
    d.cu->cuDevicePrimaryCtxRelease(device);
  }
  cuvid_free_functions(&d.cv);
  cuda_free_functions(&d.cu);
  if (unsupported) *unsupported = d.unsupported;
  if (!failure.empty()) throw std::runtime_error(failure);
  *frame_count = d.count;
  return frames;
}

}  // namespace upframe::device_check
