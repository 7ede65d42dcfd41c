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
  int width = 0, height = 0, bytes_per_sample = 1;
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

// The parser found a sequence header: create the decoder. Returns the surfaces it needs.
int CUDAAPI on_sequence(void* user, CUVIDEOFORMAT* format) {
  auto& d = *static_cast<Decoding*>(user);
  if (d.decoder) return 1;  // one sequence in these streams
  CUVIDDECODECREATEINFO info;
  std::memset(&info, 0, sizeof info);
  info.CodecType = format->codec;
  info.ChromaFormat = format->chroma_format;
  info.bitDepthMinus8 = format->bit_depth_luma_minus8;
  info.OutputFormat =
      format->bit_depth_luma_minus8 > 0 ? cudaVideoSurfaceFormat_P016 : cudaVideoSurfaceFormat_NV12;
  info.DeinterlaceMode = cudaVideoDeinterlaceMode_Weave;
  info.ulWidth = format->coded_width;
  info.ulHeight = format->coded_height;
  info.ulMaxWidth = format->coded_width;
  info.ulMaxHeight = format->coded_height;
  info.display_area.left = short(format->display_area.left);
  info.display_area.top = short(format->display_area.top);
  info.display_area.right = short(format->display_area.right);
  info.display_area.bottom = short(format->display_area.bottom);
  info.ulTargetWidth = format->display_area.right - format->display_area.left;
  info.ulTargetHeight = format->display_area.bottom - format->display_area.top;
  info.ulNumDecodeSurfaces = format->min_num_decode_surfaces + 4;
  info.ulNumOutputSurfaces = 2;
  info.ulCreationFlags = cudaVideoCreate_PreferCUVID;
  info.vidLock = d.lock;
  d.width = int(info.ulTargetWidth);
  d.height = int(info.ulTargetHeight);
  d.bytes_per_sample = format->bit_depth_luma_minus8 > 0 ? 2 : 1;
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

// A picture is ready in display order: map it, copy luma and the interleaved chroma rows out.
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
  const size_t row = size_t(d.width) * d.bytes_per_sample;
  const size_t luma = row * d.height, chroma = row * (d.height / 2);
  const size_t at = d.frames->size();
  d.frames->resize(at + luma + chroma);
  // Chroma rows follow the luma rows of the (even) surface height.
  const size_t chroma_offset = size_t(pitch) * ((d.height + 1) & ~1);
  for (int plane = 0; plane < 2 && r == CUDA_SUCCESS; ++plane) {
    CUDA_MEMCPY2D copy;
    std::memset(&copy, 0, sizeof copy);
    copy.srcMemoryType = CU_MEMORYTYPE_DEVICE;
    copy.srcDevice = surface + (plane ? chroma_offset : 0);
    copy.srcPitch = pitch;
    copy.dstMemoryType = CU_MEMORYTYPE_HOST;
    copy.dstHost = d.frames->data() + at + (plane ? luma : 0);
    copy.dstPitch = row;
    copy.WidthInBytes = row;
    copy.Height = plane ? d.height / 2 : d.height;
    r = d.cu->cuMemcpy2D(&copy);
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

std::vector<uint8_t> nvdec_decode(const std::vector<uint8_t>& stream, bool hevc, int* frame_count) {
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
  if (!failure.empty()) throw std::runtime_error(failure);
  *frame_count = d.count;
  return frames;
}

}  // namespace upframe::device_check
