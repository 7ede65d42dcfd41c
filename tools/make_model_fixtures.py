#!/usr/bin/python3
"""Writes the model fixtures of tests/nn/model_file_test.cpp into tests/models/pytorch/.

Run with Debian's python3-torch and python3-pil (`/usr/bin/python3 tools/make_model_fixtures.py`);
CI only reads what it writes. The networks below are written for upframe from the published
definitions of ESRGAN's RRDBNet (ESRGAN's original `model.N` layout and BasicSR's layout),
Real-ESRGAN's SRVGGNetCompact, SPAN (eval mode), Real-CUGAN's UpCunet2x/3x/4x (`span-cugan`
as the only argument writes just those two families' files) and RealPLKSR (neosr / spandrel,
after dslisleedh's PLKSR; `realplksr` alone writes just its files). Small random-weight
networks of each family, in each format a user meets them in, plus the shipped
realesr-animevideov3 x4 weights (read from its ncnn files) saved as its authors' tools save it
({'params': ...}). Each NAME gets NAME.ref.png: PyTorch fp32
on the input, clamped to [0, 1], times 255, rounded.
"""
import collections
import json
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "models", "pytorch")


class DenseBlock(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)

    def forward(self, x):
        act = lambda t: F.leaky_relu(t, 0.2)
        x1 = act(self.conv1(x))
        x2 = act(self.conv2(torch.cat((x, x1), 1)))
        x3 = act(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = act(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = DenseBlock(nf, gc), DenseBlock(nf, gc), DenseBlock(nf, gc)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """BasicSR's layout; `ups` nearest x2 upsamplings (2 for x4, 3 for x8, 1 for x2)."""

    def __init__(self, nf, nb, gc, ups, unshuffle=1):
        super().__init__()
        self.ups, self.unshuffle = ups, unshuffle
        self.conv_first = nn.Conv2d(3 * unshuffle * unshuffle, nf, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(nf, gc) for _ in range(nb)])
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        for u in range(ups):
            setattr(self, "conv_up%d" % (u + 1), nn.Conv2d(nf, nf, 3, 1, 1))
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)

    def forward(self, x):
        act = lambda t: F.leaky_relu(t, 0.2)
        h, w = x.shape[2:]
        if self.unshuffle > 1:
            # Real-ESRGAN's inference: reflect-pad to a multiple, unshuffle, crop the output.
            f = self.unshuffle
            x = F.pixel_unshuffle(F.pad(x, (0, (f - w % f) % f, 0, (f - h % f) % f), "reflect"), f)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for u in range(self.ups):
            conv = getattr(self, "conv_up%d" % (u + 1))
            feat = act(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(act(self.conv_hr(feat)))
        if self.unshuffle == 1:
            return out
        scale = 2 ** self.ups // self.unshuffle
        return out[:, :, : h * scale, : w * scale]

    def old_state_dict(self, nb):
        """ESRGAN's original key names for the same weights."""
        new = self.state_dict()
        old = collections.OrderedDict()
        mapping = {"conv_first": "model.0", "conv_body": "model.1.sub.%d" % nb}
        for b in range(nb):
            for r in range(1, 4):
                for c in range(1, 6):
                    mapping["body.%d.rdb%d.conv%d" % (b, r, c)] = "model.1.sub.%d.RDB%d.conv%d.0" % (b, r, c)
        # Upsample, conv, LeakyReLU per step: convs at 3, 6, ...; then HR conv and the last.
        for u in range(self.ups):
            mapping["conv_up%d" % (u + 1)] = "model.%d" % (3 * (u + 1))
        mapping["conv_hr"] = "model.%d" % (3 * self.ups + 2)
        mapping["conv_last"] = "model.%d" % (3 * self.ups + 4)
        for key, value in new.items():
            module, param = key.rsplit(".", 1)
            old[mapping[module] + "." + param] = value
        return old


class Compact(nn.Module):
    """SRVGGNetCompact: conv, PReLU, num_conv x (conv, PReLU), conv, pixel shuffle, + nearest."""

    def __init__(self, nf, num_conv, scale):
        super().__init__()
        self.scale = scale
        layers = [nn.Conv2d(3, nf, 3, 1, 1), nn.PReLU(nf)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(nf, nf, 3, 1, 1), nn.PReLU(nf)]
        layers += [nn.Conv2d(nf, 3 * scale * scale, 3, 1, 1)]
        self.body = nn.ModuleList(layers)

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        out = F.pixel_shuffle(out, self.scale)
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")


class Conv3XC(nn.Module):
    """SPAN's re-parameterisable convolution: a 1x1 shortcut `sk` plus a 1x1 -> 3x3 (unpadded)
    -> 1x1 chain `conv`. In eval mode the authors fold both into one padded 3x3 convolution on
    every forward (update_params) and run only that, so a stored `eval_conv` weight is ignored."""

    def __init__(self, c_in, c_out, gain=2):
        super().__init__()
        self.sk = nn.Conv2d(c_in, c_out, 1)
        self.conv = nn.Sequential(nn.Conv2d(c_in, c_in * gain, 1), nn.Conv2d(c_in * gain, c_out * gain, 3),
                                  nn.Conv2d(c_out * gain, c_out, 1))
        self.eval_conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def fused(self):
        a, b, c = self.conv
        # 3x3 kernel of (b after a), then c after that, then sk at the centre tap.
        w = torch.einsum("omyx,mi->oiyx", b.weight, a.weight[:, :, 0, 0])
        bias = (b.weight * a.bias.view(1, -1, 1, 1)).sum((1, 2, 3)) + b.bias
        w = torch.einsum("om,miyx->oiyx", c.weight[:, :, 0, 0], w)
        bias = c.weight[:, :, 0, 0] @ bias + c.bias
        w = w + F.pad(self.sk.weight, (1, 1, 1, 1))
        return w, bias + self.sk.bias

    def forward(self, x):
        w, b = self.fused()
        return F.conv2d(x, w, b, padding=1)


class SPAB(nn.Module):
    def __init__(self, nf):
        super().__init__()
        self.c1_r, self.c2_r, self.c3_r = Conv3XC(nf, nf), Conv3XC(nf, nf), Conv3XC(nf, nf)

    def forward(self, x):
        out1 = self.c1_r(x)
        out2 = self.c2_r(F.silu(out1))
        out3 = self.c3_r(F.silu(out2))
        attention = torch.sigmoid(out3) - 0.5
        return (out3 + x) * attention, out1


class SPAN(nn.Module):
    """SPAN (Swift Parameter-free Attention Network) in eval mode: six SPABs, the input
    normalised as (x - mean) * 255 unless the file holds a `no_norm` buffer, no denormalisation."""

    def __init__(self, nf, scale, norm=True):
        super().__init__()
        if not norm:
            self.register_buffer("no_norm", torch.zeros(1))
        self.norm = norm
        self.register_buffer("mean", torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1), persistent=False)
        self.conv_1 = Conv3XC(3, nf)
        for i in range(1, 7):
            setattr(self, "block_%d" % i, SPAB(nf))
        self.conv_cat = nn.Conv2d(nf * 4, nf, 1)
        self.conv_2 = Conv3XC(nf, nf)
        self.upsampler = nn.Sequential(nn.Conv2d(nf, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x):
        if self.norm:
            x = (x - self.mean) * 255.0
        feature = self.conv_1(x)
        out, outs = feature, []
        for i in range(1, 7):
            out, out1 = getattr(self, "block_%d" % i)(out)
            outs.append((out, out1))
        last = self.conv_2(out)
        return self.upsampler(self.conv_cat(torch.cat([feature, last, outs[0][0], outs[5][1]], 1)))


def randomise_span(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 4:
                p.normal_(0, 0.5 / (p.shape[1] * p.shape[2] * p.shape[3]) ** 0.5)
            else:
                p.normal_(0, 0.02)
        if model.norm:  # the input is in [-115, 145]
            for p in model.conv_1.parameters():
                p.mul_(255 ** -(1 / 4))
    return model


def calibrate_span(model, image):
    """The last convolution scaled so the output has a standard deviation of 0.2 around 0.5
    (random weights otherwise saturate or give a flat picture)."""
    with torch.no_grad():
        model.upsampler[0].bias.zero_()
        model.upsampler[0].weight.mul_(0.2 / model(image).std())
        model.upsampler[0].bias.fill_(0.5)
    return model


def span_state_dict(model):
    """With eval_conv weights that are NOT the fused ones (a stale save), so that reading
    them instead of fusing fails the test."""
    state = model.state_dict()
    torch.manual_seed(99)
    for k in state:
        if "eval_conv" in k:
            state[k] = torch.randn_like(state[k])
    return state


class SEBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c // 8, 1)
        self.conv2 = nn.Conv2d(c // 8, c, 1)

    def forward(self, x):
        s = torch.sigmoid(self.conv2(F.relu(self.conv1(x.mean((2, 3), keepdim=True)))))
        return x * s


class UNetConv(nn.Module):
    def __init__(self, c_in, c_mid, c_out, se):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c_in, c_mid, 3), nn.LeakyReLU(0.1), nn.Conv2d(c_mid, c_out, 3),
                                  nn.LeakyReLU(0.1))
        if se:
            self.seblock = SEBlock(c_out)

    def forward(self, x):
        x = self.conv(x)
        return self.seblock(x) if hasattr(self, "seblock") else x


def lrelu(x):
    return F.leaky_relu(x, 0.1)


class CuganUNet1(nn.Module):
    """Real-CUGAN's shallow U-Net; `bottom` is (kernel, stride, padding) of its last deconvolution
    (4, 2, 3 for x2 and x4; 5, 3, 2 for x3). Widths divided by `d` (the published network: d=1)."""

    def __init__(self, c_in, c_out, bottom, d):
        super().__init__()
        self.conv1 = UNetConv(c_in, 32 // d, 64 // d, False)
        self.conv1_down = nn.Conv2d(64 // d, 64 // d, 2, 2)
        self.conv2 = UNetConv(64 // d, 128 // d, 64 // d, True)
        self.conv2_up = nn.ConvTranspose2d(64 // d, 64 // d, 2, 2)
        self.conv3 = nn.Conv2d(64 // d, 64 // d, 3)
        self.conv_bottom = nn.ConvTranspose2d(64 // d, c_out, bottom[0], bottom[1], bottom[2])

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = self.conv2_up(self.conv2(lrelu(self.conv1_down(x1))))
        x3 = lrelu(self.conv3(x1[:, :, 4:-4, 4:-4] + lrelu(x2)))
        return self.conv_bottom(x3)


class CuganUNet2(nn.Module):
    def __init__(self, c_in, c_out, d):
        super().__init__()
        self.conv1 = UNetConv(c_in, 32 // d, 64 // d, False)
        self.conv1_down = nn.Conv2d(64 // d, 64 // d, 2, 2)
        self.conv2 = UNetConv(64 // d, 64 // d, 128 // d, True)
        self.conv2_down = nn.Conv2d(128 // d, 128 // d, 2, 2)
        self.conv3 = UNetConv(128 // d, 256 // d, 128 // d, True)
        self.conv3_up = nn.ConvTranspose2d(128 // d, 128 // d, 2, 2)
        self.conv4 = UNetConv(128 // d, 64 // d, 64 // d, True)
        self.conv4_up = nn.ConvTranspose2d(64 // d, 64 // d, 2, 2)
        self.conv5 = nn.Conv2d(64 // d, 64 // d, 3)
        self.conv_bottom = nn.Conv2d(64 // d, c_out, 3)

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = self.conv2(lrelu(self.conv1_down(x1)))
        x3 = lrelu(self.conv3_up(self.conv3(lrelu(self.conv2_down(x2)))))
        x4 = lrelu(self.conv4_up(self.conv4(x2[:, :, 4:-4, 4:-4] + x3)))
        x5 = lrelu(self.conv5(x1[:, :, 16:-16, 16:-16] + x4))
        return self.conv_bottom(x5)


class UpCunet(nn.Module):
    """Real-CUGAN UpCunet2x / 3x / 4x (optionally "pro") as the authors' forward runs a whole
    image: reflection padding (to a multiple of 2, or 4 for x3), the two U-Nets, the crop."""

    def __init__(self, scale, d=1, pro=False):
        super().__init__()
        self.scale, self.is_pro = scale, pro
        if pro:
            self.register_buffer("pro", torch.zeros(1))
        out = 64 // d if scale == 4 else 3
        self.unet1 = CuganUNet1(3, out, (5, 3, 2) if scale == 3 else (4, 2, 3), d)
        self.unet2 = CuganUNet2(out, out, d)
        if scale == 4:
            self.conv_final = nn.Conv2d(64 // d, 12, 3)

    def forward(self, x):
        h0, w0 = x.shape[2:]
        if self.is_pro:
            x = x * 0.7 + 0.15
        x00 = x
        m, p = {2: (2, 18), 3: (4, 14), 4: (2, 19)}[self.scale]
        ph, pw = (h0 - 1) // m * m + m, (w0 - 1) // m * m + m
        x = self.unet1(F.pad(x, (p, p + pw - w0, p, p + ph - h0), "reflect"))
        x = self.unet2(x) + x[:, :, 20:-20, 20:-20]
        if self.scale == 4:
            x = F.pixel_shuffle(self.conv_final(x)[:, :, 1:-1, 1:-1], 2)
        x = x[:, :, : h0 * self.scale, : w0 * self.scale]
        if self.scale == 4:
            x = x + F.interpolate(x00, scale_factor=4, mode="nearest")
        if self.is_pro:
            x = (x - 0.15) / 0.7
        return x


def randomise_cugan(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 4:
                fan = p.shape[1] * p.shape[2] * p.shape[3]
                if "up" in name or "bottom" in name and "unet1" in name:  # transposed: (in, out, k, k)
                    fan = p.shape[0] * p.shape[2] * p.shape[3] / 4
                p.normal_(0, 1.2 / fan ** 0.5)
            else:
                p.normal_(0, 0.05)
    return model


def calibrate_cugan(model, image):
    """The last layers scaled so each part of the output has a moderate contrast."""
    with torch.no_grad():
        if model.scale == 4:
            model.conv_final.weight.mul_(0.15 / model(image).std())
            return model
        model.unet2.conv_bottom.weight.zero_()
        model.unet2.conv_bottom.bias.zero_()
        model.unet1.conv_bottom.bias.zero_()
        model.unet1.conv_bottom.weight.mul_(0.2 / model(image).std())
        model.unet1.conv_bottom.bias.fill_(0.5)
        without_unet2 = model(image)
        torch.manual_seed(model.scale)
        model.unet2.conv_bottom.weight.normal_(0, 1.0)
        model.unet2.conv_bottom.weight.mul_(0.1 / (model(image) - without_unet2).std())
    return model


class ChannelLayerNorm(nn.Module):
    """RealPLKSR's channels-first LayerNorm: over the channels of each pixel, eps 1e-6."""

    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * ((x - mean) / torch.sqrt(var + 1e-6)) + self.bias[:, None, None]


class EA(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.f(x)


class PartialLargeKernel(nn.Module):
    def __init__(self, pdim, kernel):
        super().__init__()
        self.pdim = pdim
        self.conv = nn.Conv2d(pdim, pdim, kernel, 1, kernel // 2)

    def forward(self, x):
        return torch.cat([self.conv(x[:, : self.pdim]), x[:, self.pdim :]], 1)


class PLKBlock(nn.Module):
    """LayerNorm (or nothing), DCCM (3x3 to 2*dim, Mish, 3x3 back), the partial large kernel,
    EA, a 1x1 refinement, GroupNorm(4) (or nothing when the LayerNorm is there), + input."""

    def __init__(self, dim, kernel, pdim, layer_norm, attention):
        super().__init__()
        if layer_norm:
            self.layer_norm = ChannelLayerNorm(dim)
        self.channel_mixer = nn.Sequential(nn.Conv2d(dim, 2 * dim, 3, 1, 1), nn.Mish(),
                                           nn.Conv2d(2 * dim, dim, 3, 1, 1))
        self.lk = PartialLargeKernel(pdim, kernel)
        if attention:
            self.attn = EA(dim)
        self.refine = nn.Conv2d(dim, dim, 1, 1, 0)
        if not layer_norm:
            self.norm = nn.GroupNorm(4, dim)

    def forward(self, x):
        h = self.layer_norm(x) if hasattr(self, "layer_norm") else x
        h = self.lk(self.channel_mixer(h))
        if hasattr(self, "attn"):
            h = self.attn(h)
        h = self.refine(h)
        if hasattr(self, "norm"):
            h = self.norm(h)
        return h + x


class DySample(nn.Module):
    """DySample's upsampling as RealPLKSR uses it: offsets = offset(x) * sigmoid(scope(x)) * 0.5
    + init_pos (each sub-pixel's centre), x sampled there per group of channels with
    grid_sample (bilinear, align_corners=False, border), then end_conv when scale != 1."""

    def __init__(self, channels, out_ch, scale, groups):
        super().__init__()
        self.scale, self.groups = scale, groups
        self.offset = nn.Conv2d(channels, 2 * groups * scale * scale, 1)
        self.scope = nn.Conv2d(channels, 2 * groups * scale * scale, 1, bias=False)
        if scale != 1:
            self.end_conv = nn.Conv2d(channels, out_ch, 1)
        centres = (torch.arange(scale) - (scale - 1) / 2) / scale
        pos = torch.zeros(2, groups, scale, scale)
        pos[0] = centres[None, None, :]  # x: by sub-pixel column
        pos[1] = centres[None, :, None]  # y: by sub-pixel row
        self.register_buffer("init_pos", pos.reshape(1, -1, 1, 1))

    def forward(self, x):
        b, _, h, w = x.shape
        s, g = self.scale, self.groups
        offset = (self.offset(x) * self.scope(x).sigmoid() * 0.5 + self.init_pos).view(b, 2, -1, h, w)
        ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        centres = torch.stack([xs, ys]).to(x.dtype)[None, :, None]
        size = torch.tensor([w, h], dtype=x.dtype).view(1, 2, 1, 1, 1)
        grid = 2 * (centres + offset) / size - 1
        grid = F.pixel_shuffle(grid.reshape(b, -1, h, w), s).view(b, 2, g, s * h, s * w)
        grid = grid.permute(0, 2, 3, 4, 1).reshape(b * g, s * h, s * w, 2)
        out = F.grid_sample(x.reshape(b * g, -1, h, w), grid, mode="bilinear", align_corners=False,
                            padding_mode="border").view(b, -1, s * h, s * w)
        return self.end_conv(out) if s != 1 else out


class RealPLKSR(nn.Module):
    def __init__(self, dim, blocks, scale, kernel, pdim, layer_norm, attention=True, dysample=False):
        super().__init__()
        self.scale = scale
        self.feats = nn.Sequential(nn.Conv2d(3, dim, 3, 1, 1),
                                   *[PLKBlock(dim, kernel, pdim, layer_norm, attention) for _ in range(blocks)],
                                   nn.Dropout2d(0.5), nn.Conv2d(dim, 3 * scale * scale, 3, 1, 1))
        if dysample:
            self.to_img = DySample(3 * scale * scale, 3, scale, 3 if scale % 2 else 4)

    def forward(self, x):
        out = self.feats(x) + torch.repeat_interleave(x, self.scale * self.scale, dim=1)
        if hasattr(self, "to_img"):
            return self.to_img(out)
        return F.pixel_shuffle(out, self.scale)


def randomise_realplksr(model, seed):
    """Random weights, norms' gamma and beta included, kept small enough for an image."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 4:
                p.normal_(0, 0.8 / (p.shape[1] * p.shape[2] * p.shape[3]) ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0, 0.05)
        # The blocks' detail on top of the repeated input, mostly inside [0, 1] (not clamped).
        model.feats[-1].weight.mul_(0.12)
        if hasattr(model, "to_img"):
            # Offsets of up to a pixel or two, so samples fall between and outside pixels.
            model.to_img.offset.weight.mul_(6)
            # end_conv: each output channel about the mean of its repeated input channels.
            s2 = model.scale * model.scale
            mean = torch.zeros_like(model.to_img.end_conv.weight)
            for o in range(3):
                mean[o, o * s2:(o + 1) * s2] = 1 / s2
            model.to_img.end_conv.weight.mul_(0.3).add_(mean)
    return model


def realplksr_fixtures(small, tiny):
    """RealPLKSR with GroupNorm (x2, .pth under params_ema) and with LayerNorm (x4,
    .safetensors; x2 without EA, .pth), 16 features, 2 blocks, 13x13 and 17x17 large kernels;
    with the DySample upsampler (x4 GroupNorm, 4 groups; x3 LayerNorm, 3 groups)."""
    cases = []
    group = randomise_realplksr(RealPLKSR(16, 2, 2, 17, 4, layer_norm=False), 11).eval()
    torch.save({"params_ema": group.state_dict()}, os.path.join(OUT, "realplksr-x2.pth"))
    cases.append(("realplksr-x2.pth", group, small))
    layer = randomise_realplksr(RealPLKSR(16, 2, 4, 13, 4, layer_norm=True), 12).eval()
    write_safetensors(os.path.join(OUT, "realplksr-layernorm-x4.safetensors"), layer.state_dict())
    cases.append(("realplksr-layernorm-x4.safetensors", layer, tiny))
    no_ea = randomise_realplksr(RealPLKSR(12, 1, 2, 9, 3, layer_norm=True, attention=False), 13).eval()
    torch.save(no_ea.state_dict(), os.path.join(OUT, "realplksr-layernorm-noea-x2.pth"))
    cases.append(("realplksr-layernorm-noea-x2.pth", no_ea, small))
    dysample4 = randomise_realplksr(RealPLKSR(16, 1, 4, 11, 4, layer_norm=False, dysample=True), 14).eval()
    torch.save({"params_ema": dysample4.state_dict()}, os.path.join(OUT, "realplksr-dysample-x4.pth"))
    cases.append(("realplksr-dysample-x4.pth", dysample4, tiny))
    dysample3 = randomise_realplksr(RealPLKSR(12, 1, 3, 7, 3, layer_norm=True, dysample=True), 15).eval()
    write_safetensors(os.path.join(OUT, "realplksr-dysample-x3.safetensors"), dysample3.state_dict())
    cases.append(("realplksr-dysample-x3.safetensors", dysample3, tiny))
    return cases


def randomise(model, seed):
    """Small weights so random networks give images, not saturation."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 4:
                p.normal_(0, 0.6 / (p.shape[1] * 9) ** 0.5)
            elif name.endswith("bias"):
                p.normal_(0, 0.02)
            else:  # PReLU slopes
                p.uniform_(0.0, 0.3)
        if hasattr(model, "conv_last"):
            model.conv_last.weight.mul_(4)  # contrast: the output is the network alone
            model.conv_last.bias.fill_(0.5)
    return model


def load_image(name, crop=None):
    img = Image.open(os.path.join(ROOT, "tests", "golden", name)).convert("RGB")
    if crop:
        img = img.crop(crop)
    return torch.from_numpy(np.asarray(img).astype(np.float32) / 255).permute(2, 0, 1)[None]


def save_reference(out, path):
    arr = (out[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(path, optimize=True)


def write_safetensors(path, state):
    header, blobs, offset = {}, [], 0
    for k, v in state.items():
        raw = v.detach().contiguous().float().numpy().tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_ncnn_compact(param, binary):
    """The shipped realesr-animevideov3 ncnn files as SRVGGNetCompact weights."""
    lines = open(param).read().split("\n")[2:]
    data = open(binary, "rb").read()
    pos, state, index = 0, collections.OrderedDict(), 0
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        kind = parts[0]
        params = dict(p.split("=") for p in parts[4 + int(parts[2]) + int(parts[3]):] if "=" in p)
        if kind == "Convolution":
            n_out, k, count = int(params["0"]), int(params["1"]), int(params["6"])
            flag = struct.unpack_from("<I", data, pos)[0]
            pos += 4
            if flag == 0x01306B47:  # fp16
                w = np.frombuffer(data, np.float16, count, pos).astype(np.float32)
                pos += (count * 2 + 3) // 4 * 4
            else:
                w = np.frombuffer(data, np.float32, count, pos)
                pos += count * 4
            b = np.frombuffer(data, np.float32, n_out, pos)
            pos += n_out * 4
            state["body.%d.weight" % index] = torch.from_numpy(w.reshape(n_out, -1, k, k).copy())
            state["body.%d.bias" % index] = torch.from_numpy(b.copy())
            index += 1
        elif kind == "PReLU":
            n = int(params["0"])
            state["body.%d.weight" % index] = torch.from_numpy(np.frombuffer(data, np.float32, n, pos).copy())
            pos += n * 4
            index += 1
    return state


def main():
    os.makedirs(OUT, exist_ok=True)
    small = load_image("testsrc2_160x90.png", (40, 20, 104, 56))  # 64x36
    tiny = load_image("testsrc2_160x90.png", (60, 30, 92, 48))    # 32x18
    cases = []

    compact2 = randomise(Compact(16, 4, 2), 1).eval()
    torch.save({"params": compact2.state_dict()}, os.path.join(OUT, "compact-x2.pth"))
    cases.append(("compact-x2.pth", compact2, small))

    compact4 = randomise(Compact(12, 3, 4), 2).eval()
    write_safetensors(os.path.join(OUT, "compact-x4.safetensors"), compact4.state_dict())
    cases.append(("compact-x4.safetensors", compact4, small))

    esrgan4 = randomise(RRDBNet(16, 2, 8, 2), 3).eval()
    torch.save({"params_ema": esrgan4.state_dict(), "params": esrgan4.state_dict()},
               os.path.join(OUT, "esrgan-x4.pth"))
    cases.append(("esrgan-x4.pth", esrgan4, small))

    esrgan_old2 = randomise(RRDBNet(12, 1, 6, 1), 4).eval()
    torch.save(esrgan_old2.old_state_dict(1), os.path.join(OUT, "esrgan-old-x2.pth"),
               _use_new_zipfile_serialization=False)
    cases.append(("esrgan-old-x2.pth", esrgan_old2, small))

    esrgan_old8 = randomise(RRDBNet(8, 1, 4, 3), 5).eval()
    write_safetensors(os.path.join(OUT, "esrgan-old-x8.safetensors"), esrgan_old8.old_state_dict(1))
    cases.append(("esrgan-old-x8.safetensors", esrgan_old8, tiny))

    # Real-ESRGAN x2plus / x1 style: the input pixel-unshuffled by 2 or 4, on an odd-sized image.
    odd = load_image("testsrc2_160x90.png", (40, 20, 103, 55))  # 63x35
    esrgan2u = randomise(RRDBNet(12, 1, 6, 2, unshuffle=2), 6).eval()
    torch.save({"params_ema": esrgan2u.state_dict()}, os.path.join(OUT, "esrgan-unshuffle-x2.pth"))
    cases.append(("esrgan-unshuffle-x2.pth", esrgan2u, odd))
    esrgan1u = randomise(RRDBNet(12, 1, 6, 2, unshuffle=4), 7).eval()
    write_safetensors(os.path.join(OUT, "esrgan-unshuffle-x1.safetensors"), esrgan1u.state_dict())
    cases.append(("esrgan-unshuffle-x1.safetensors", esrgan1u, odd))

    cases += realplksr_fixtures(small, tiny)

    shipped = Compact(64, 16, 4).eval()
    shipped.load_state_dict(read_ncnn_compact(os.path.join(ROOT, "models", "realesr-animevideov3-x4.param"),
                                              os.path.join(ROOT, "models", "realesr-animevideov3-x4.bin")))
    torch.save({"params": shipped.state_dict()}, os.path.join(OUT, "realesr-animevideov3-x4.pth"))
    cases.append(("realesr-animevideov3-x4.pth", shipped, load_image("testsrc2_160x90.png")))

    with torch.no_grad():
        for name, model, image in cases:
            save_reference(model(image), os.path.join(OUT, name + ".ref.png"))
            if image is small:
                input_name = "input_64x36.png"
            elif image is tiny:
                input_name = "input_32x18.png"
            elif image is odd:
                input_name = "input_63x35.png"
            else:
                continue
            save_reference(image, os.path.join(OUT, input_name))
    print("wrote", OUT, "with torch", torch.__version__)


def export_onnx():
    """ONNX exports of fixtures above (torch.onnx, dynamic height and width), one with fp16
    initializers, and one with an op outside the supported set."""
    import onnx
    from onnx import helper, numpy_helper, TensorProto

    def export(model, path, opset):
        x = torch.rand(1, 3, 36, 64)
        torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"],
                          output_names=["output"],
                          dynamic_axes={"input": {2: "h", 3: "w"}, "output": {2: "H", 3: "W"}})

    compact2 = Compact(16, 4, 2)
    compact2.load_state_dict(torch.load(os.path.join(OUT, "compact-x2.pth"))["params"])
    export(compact2.eval(), os.path.join(OUT, "compact-x2.onnx"), 11)
    esrgan4 = RRDBNet(16, 2, 8, 2)
    esrgan4.load_state_dict(torch.load(os.path.join(OUT, "esrgan-x4.pth"))["params_ema"])
    export(esrgan4.eval(), os.path.join(OUT, "esrgan-x4.onnx"), 17)
    # fp16 weights and activations (as "fp16" model downloads are): every initializer and the
    # graph's input and output as float16.
    model = onnx.load(os.path.join(OUT, "compact-x2.onnx"))
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT and node.op_type == "Constant" and len(attr.t.dims) > 1:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16), attr.t.name))
    for v in list(model.graph.input) + list(model.graph.output):
        v.type.tensor_type.elem_type = TensorProto.FLOAT16
    onnx.save(model, os.path.join(OUT, "compact-x2-fp16.onnx"))
    # An op upframe does not run (Softmax over channels) between two convolutions.
    model = onnx.load(os.path.join(OUT, "compact-x2.onnx"))
    nodes = list(model.graph.node)
    first_out = nodes[0].output[0]
    soft = helper.make_node("Softmax", [first_out], ["soft_out"], name="channel_softmax", axis=1)
    for n in nodes[1:]:
        for i, name in enumerate(n.input):
            if name == first_out:
                n.input[i] = "soft_out"
    del model.graph.node[:]
    model.graph.node.extend([nodes[0], soft] + nodes[1:])
    onnx.save(model, os.path.join(OUT, "unsupported-op.onnx"))
    for name in ["compact-x2.onnx", "esrgan-x4.onnx", "compact-x2-fp16.onnx"]:
        m = onnx.load(os.path.join(OUT, name))
        print(name, "opset", m.opset_import[0].version, sorted({n.op_type for n in m.graph.node}))


class DeconvNet(nn.Module):
    """x2 by transposed convolutions: stride 2 with output_padding in two groups, then
    asymmetric kernels and pads that return to 2x, plus the nearest-upsampled input."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, 1, 1)
        self.up = nn.ConvTranspose2d(8, 8, 3, 2, 1, output_padding=1, groups=2)
        self.mid = nn.ConvTranspose2d(8, 6, 4, 1, (1, 2))  # 2h+1 x 2w-1
        self.tail = nn.ConvTranspose2d(6, 3, 2, 1, (1, 0))  # 2h x 2w

    def forward(self, x):
        y = F.leaky_relu(self.head(x), 0.1)
        y = F.leaky_relu(self.up(y), 0.1)
        y = F.leaky_relu(self.mid(y), 0.1)
        return self.tail(y) + F.interpolate(x, scale_factor=2, mode="nearest")


def unshuffle_view(x, r, space_to_depth):
    """PyTorch's pixel_unshuffle, or ONNX SpaceToDepth's channel order, written as view/permute."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // r, r, w // r, r)
    x = x.permute(0, 3, 5, 1, 2, 4) if space_to_depth else x.permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c * r * r, h // r, w // r)


def shuffle_view(x, r, dcr):
    """PyTorch's pixel_shuffle, or ONNX DepthToSpace DCR, written as view/permute."""
    b, c, h, w = x.shape
    if dcr:
        x = x.view(b, r, r, c // (r * r), h, w).permute(0, 3, 4, 1, 5, 2)
    else:
        x = x.view(b, c // (r * r), r, r, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c // (r * r), h * r, w * r)


class ShuffleNet(nn.Module):
    """x2: unshuffle by 2, convolutions, shuffle by 4, with slices over channels; the residual
    upsampled to a size computed from the input's (F.interpolate(size=...)) or by a recomputed
    scale factor. `manual`: the shuffles as view/permute (Reshape+Transpose in ONNX) instead of
    F.pixel_(un)shuffle; `dcr`: ONNX's SpaceToDepth and DepthToSpace DCR orders (manual only)."""

    def __init__(self, manual, dcr=False):
        super().__init__()
        self.manual, self.dcr = manual, dcr
        self.head = nn.Conv2d(12, 8, 3, 1, 1)
        self.tail = nn.Conv2d(8, 48, 3, 1, 1)

    def forward(self, x):
        h, w = x.shape[2:]
        y = unshuffle_view(x, 2, self.dcr) if self.manual else F.pixel_unshuffle(x, 2)
        y = self.head(y)
        y = torch.cat([F.leaky_relu(y[:, :4], 0.2), torch.sigmoid(y[:, -4:]) - 0.5], 1)
        y = self.tail(y)
        y = shuffle_view(y, 4, self.dcr) if self.manual else F.pixel_shuffle(y, 4)
        if self.manual:
            return y + F.interpolate(x, scale_factor=2.0, mode="nearest", recompute_scale_factor=True)
        return y + F.interpolate(x, size=(h * 2, w * 2), mode="bilinear", align_corners=False)


class SqueezeExcite(nn.Module):
    """x2: the channels split in two halves, squeeze-and-excitation on each (1x1 convolutions on
    the pooled tensor; Linear layers on the flattened mean), a pixel shuffle, plus the
    bicubic-upsampled input."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 16, 3, 1, 1)
        self.se1, self.se2 = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        self.fc1, self.fc2 = nn.Linear(8, 4), nn.Linear(4, 8)
        self.tail = nn.Conv2d(16, 12, 3, 1, 1)

    def forward(self, x):
        a, b = torch.split(self.head(x), 8, dim=1)
        a = a * torch.sigmoid(self.se2(F.relu(self.se1(F.adaptive_avg_pool2d(a, 1)))))
        n, c = b.shape[:2]
        b = b * torch.sigmoid(self.fc2(F.relu(self.fc1(b.mean((2, 3)))))).view(n, c, 1, 1)
        y = F.pixel_shuffle(self.tail(torch.cat([a, F.leaky_relu(b, 0.2)], 1)), 2)
        return y + F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


class TransposedImage(nn.Module):
    """A layout change that is not a pixel (un)shuffle: height and width swapped."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, 1, 1)

    def forward(self, x):
        return self.conv(x).transpose(2, 3)


def export_onnx_ops():
    """Networks for the ONNX importer's layout and shape ops, exported by torch.onnx at opsets
    11 and 17 (torch 1.13 writes at most 17) with dynamic height and width, each with PyTorch's
    fp32 output on input_64x36.png; SpaceToDepth and DepthToSpace DCR as ONNX nodes (which
    torch does not write) by hand; and a graph with a layout change upframe refuses.
    `make_model_fixtures.py onnx-ops` writes only these."""
    import onnx
    from onnx import helper, numpy_helper

    def export(model, path, opset):
        torch.onnx.export(model, torch.rand(1, 3, 36, 64), path, opset_version=opset,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {2: "h", 3: "w"}, "output": {2: "H", 3: "W"}})

    image = load_image("testsrc2_160x90.png", (40, 20, 104, 56))
    nets = [("onnx-deconv", randomise(DeconvNet(), 11)),
            ("onnx-shuffle", randomise(ShuffleNet(False), 12)),
            ("onnx-shuffle-view", randomise(ShuffleNet(True), 13)),
            ("onnx-se", randomise(SqueezeExcite(), 14)),
            ("onnx-dcr-view", randomise(ShuffleNet(True, dcr=True), 15))]
    with torch.no_grad():
        for name, model in nets:
            model.eval()
            save_reference(model(image), os.path.join(OUT, name + ".ref.png"))
            for opset in (11, 17):
                export(model, os.path.join(OUT, "%s-%d.onnx" % (name, opset)), opset)
    # SpaceToDepth and DepthToSpace DCR as single nodes: onnx-dcr-view's network without the
    # residual, checked against PyTorch separately.
    dcr = dict(nets)["onnx-dcr-view"]
    with torch.no_grad():
        y = unshuffle_view(image, 2, True)
        y = dcr.head(y)
        y = torch.cat([F.leaky_relu(y[:, :4], 0.2), torch.sigmoid(y[:, -4:]) - 0.5], 1)
        save_reference(shuffle_view(dcr.tail(y), 4, True) + 0.5, os.path.join(OUT, "onnx-depth-ops.ref.png"))
    weights = {k: numpy_helper.from_array(v.numpy(), k) for k, v in dcr.state_dict().items()}
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    nodes = [helper.make_node("SpaceToDepth", ["input"], ["s2d"], name="space_to_depth", blocksize=2),
             helper.make_node("Conv", ["s2d", "head.weight", "head.bias"], ["h"], name="head", pads=[1, 1, 1, 1]),
             helper.make_node("Slice", ["h", "starts", "ends", "axes"], ["lo"], name="low_channels"),
             helper.make_node("Slice", ["h", "starts_hi", "ends_hi", "axes"], ["hi"], name="high_channels"),
             helper.make_node("LeakyRelu", ["lo"], ["lo_act"], alpha=0.2),
             helper.make_node("Sigmoid", ["hi"], ["hi_sig"]),
             helper.make_node("Sub", ["hi_sig", "half"], ["hi_act"]),
             helper.make_node("Concat", ["lo_act", "hi_act"], ["cat"], axis=1),
             helper.make_node("Conv", ["cat", "tail.weight", "tail.bias"], ["t"], name="tail", pads=[1, 1, 1, 1]),
             helper.make_node("DepthToSpace", ["t"], ["d2s"], name="depth_to_space", blocksize=4, mode="DCR"),
             helper.make_node("Add", ["d2s", "half"], ["output"])]
    inits = list(weights.values()) + [half, numpy_helper.from_array(np.array([0], np.int64), "starts"),
                                      numpy_helper.from_array(np.array([4], np.int64), "ends"),
                                      numpy_helper.from_array(np.array([1], np.int64), "axes"),
                                      numpy_helper.from_array(np.array([-4], np.int64), "starts_hi"),
                                      numpy_helper.from_array(np.array([2**63 - 1], np.int64), "ends_hi")]
    graph = helper.make_graph(
        nodes, "depth_ops",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [1, 3, "H", "W"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, "onnx-depth-ops.onnx"))
    export(randomise(TransposedImage(), 16).eval(), os.path.join(OUT, "unsupported-transpose.onnx"), 13)
    # Opset 18's forms (torch 1.13 and onnx 1.12 write at most 17, so by hand): Pad and
    # ReduceMean with axes as inputs, Resize with an axes attribute and two scales; with
    # Flatten and reshapes that change nothing.
    conv = randomise(nn.Conv2d(3, 3, 3), 17).eval()
    with torch.no_grad():
        y = conv(F.pad(image, (1, 1, 1, 1), "reflect"))
        y = y * torch.sigmoid(y.mean((2, 3), keepdim=True))
        save_reference(F.interpolate(y, scale_factor=2, mode="nearest"), os.path.join(OUT, "onnx-opset18.ref.png"))
    ints = lambda v, n: numpy_helper.from_array(np.array(v, np.int64), n)
    inits = [numpy_helper.from_array(conv.weight.detach().numpy(), "w"),
             numpy_helper.from_array(conv.bias.detach().numpy(), "b"), ints([1, 1, 1, 1], "pads"),
             ints([2, 3], "axes"), numpy_helper.from_array(np.array([2, 2], np.float32), "scales"),
             ints([1, 3, 1, 1], "gate_shape")]
    nodes = [helper.make_node("Pad", ["input", "pads", "", "axes"], ["padded"], name="pad", mode="reflect"),
             helper.make_node("Conv", ["padded", "w", "b"], ["c"], name="conv"),
             helper.make_node("ReduceMean", ["c", "axes"], ["mean"], name="mean", keepdims=1),
             # The pooled [1, C, 1, 1] flattened to [1, C] and back, the image reshaped to its
             # own shape: no-ops upframe must see through.
             helper.make_node("Flatten", ["mean"], ["flat"], axis=1),
             helper.make_node("Reshape", ["flat", "gate_shape"], ["mean4"], name="unflatten"),
             helper.make_node("Sigmoid", ["mean4"], ["gate"]),
             helper.make_node("Shape", ["c"], ["c_shape"]),
             helper.make_node("Reshape", ["c", "c_shape"], ["same"], name="same_shape"),
             helper.make_node("Mul", ["same", "gate"], ["gated"]),
             helper.make_node("Resize", ["gated", "", "scales"], ["output"], name="resize", mode="nearest",
                              axes=[2, 3], coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
    graph = helper.make_graph(
        nodes, "opset18",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [1, 3, "H", "W"])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]),
              os.path.join(OUT, "onnx-opset18.onnx"))
    for name in sorted(os.listdir(OUT)):
        if name.startswith("onnx-") and name.endswith(".onnx"):
            m = onnx.load(os.path.join(OUT, name))
            print(name, "opset", m.opset_import[0].version, sorted({n.op_type for n in m.graph.node}))



def span_cugan():
    """SPAN at x2 (normalised input, .pth) and x4 (`no_norm`, .safetensors); Real-CUGAN x2, x3
    and x4-pro with every width divided by 8 (the published widths make 5 MB files; the graph
    is the same, its widths read from the shapes)."""
    small = load_image("testsrc2_160x90.png", (40, 20, 104, 56))  # 64x36
    odd = load_image("testsrc2_160x90.png", (40, 20, 103, 55))    # 63x35
    cases = []
    full = load_image("testsrc2_160x90.png")
    span2 = calibrate_span(randomise_span(SPAN(8, 2), 11).eval(), full)
    with torch.no_grad():  # saved as fp16: the reference runs on the same rounded weights
        for p in span2.parameters():
            p.copy_(p.half().float())
    torch.save({"params": {k: v.half() for k, v in span_state_dict(span2).items()}},
               os.path.join(OUT, "span-x2.pth"))
    cases.append(("span-x2.pth", span2, full))
    span4 = calibrate_span(randomise_span(SPAN(6, 4, norm=False), 12).eval(), odd)
    write_safetensors(os.path.join(OUT, "span-x4.safetensors"), span_state_dict(span4))
    cases.append(("span-x4.safetensors", span4, odd))
    cugan2 = calibrate_cugan(randomise_cugan(UpCunet(2, 8), 13).eval(), odd)
    torch.save(cugan2.state_dict(), os.path.join(OUT, "realcugan-x2.pth"))
    cases.append(("realcugan-x2.pth", cugan2, odd))
    cugan3 = calibrate_cugan(randomise_cugan(UpCunet(3, 8), 14).eval(), odd)
    torch.save(cugan3.state_dict(), os.path.join(OUT, "realcugan-x3.pth"),
               _use_new_zipfile_serialization=False)
    cases.append(("realcugan-x3.pth", cugan3, odd))
    cugan4 = calibrate_cugan(randomise_cugan(UpCunet(4, 8, pro=True), 15).eval(), small)
    write_safetensors(os.path.join(OUT, "realcugan-pro-x4.safetensors"), cugan4.state_dict())
    cases.append(("realcugan-pro-x4.safetensors", cugan4, small))
    with torch.no_grad():
        # The fold is the authors' update_params (kernels composed by convolution).
        c = span2.block_3.c2_r
        a, b, e = c.conv
        w = F.conv2d(a.weight.flip(2, 3).permute(1, 0, 2, 3), b.weight, padding=2).flip(2, 3).permute(1, 0, 2, 3)
        w = F.conv2d(w.flip(2, 3).permute(1, 0, 2, 3), e.weight).flip(2, 3).permute(1, 0, 2, 3)
        assert torch.allclose(w + F.pad(c.sk.weight, (1, 1, 1, 1)), c.fused()[0], atol=1e-6)
        for name, model, image in cases:
            out = model(image)
            print(name, tuple(out.shape), "mean %.3f std %.3f clipped %.3f" % (
                out.mean(), out.std(), ((out < 0) | (out > 1)).float().mean()))
            save_reference(out, os.path.join(OUT, name + ".ref.png"))


def main_realplksr():
    """Only the RealPLKSR fixtures (the others stay byte for byte as they are)."""
    small = load_image("testsrc2_160x90.png", (40, 20, 104, 56))
    tiny = load_image("testsrc2_160x90.png", (60, 30, 92, 48))
    with torch.no_grad():
        for name, model, image in realplksr_fixtures(small, tiny):
            save_reference(model(image), os.path.join(OUT, name + ".ref.png"))
            print("wrote", name)


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["span-cugan"]:  # only these (the others stay byte for byte)
        span_cugan()
    elif sys.argv[1:] == ["realplksr"]:
        main_realplksr()
    elif sys.argv[1:] == ["onnx-ops"]:  # only the ONNX importer's op fixtures
        export_onnx_ops()
    else:
        main()
        export_onnx()
        span_cugan()
        export_onnx_ops()
