"""Row-wise int8 and fp16 quantization through fbgemm_gpu's ``QuantizedCommCodec``, the codec
TorchRec uses for its quantized embedding all-to-alls (Yang et al., DLP-KDD 2020). It runs on CPU.

int8 is fbgemm's fused 8-bit row-wise format: each row becomes its bytes plus a float32 scale and
bias (``FloatToFused8BitRowwiseQuantized``), so a 16-wide embedding row is 24 bytes instead of 64;
fp16 halves every value. The bytes per row are read off the codec itself (its CPU kernel does not
pad rows the way ``calc_quantized_size`` assumes for GPUs). A matrix whose rows are so short that
the scale and bias outweigh the saving (a [16, 1] weight) travels raw.

fbgemm_gpu is imported on first use: it loads its kernels (~4 s), which runs that do not quantize
should not pay.
"""

from __future__ import annotations

from functools import cache

import torch

from fedrec.pipeline.codec import Codec, Memory, Parts, PartSpec, Seeds


@cache
def _fbgemm():
    from fbgemm_gpu.quantize_comm import QuantizationContext, QuantizedCommCodec
    from fbgemm_gpu.split_embedding_configs import SparseType

    return QuantizedCommCodec, QuantizationContext, SparseType


@cache
def _codec(method: str):
    codec_cls, _, sparse_type = _fbgemm()
    return codec_cls(sparse_type.INT8 if method == "int8" else sparse_type.FP16)


@cache
def int8_row_bytes(cols: int) -> int:
    """Bytes fbgemm's fused int8 row-wise format takes for one row of ``cols`` values."""
    _, context, _ = _fbgemm()
    ctx = context(row_dim=cols)
    _codec("int8").encode(torch.zeros(cols), ctx)
    return int(ctx.row_dim_quant)


class RowwiseQuantizer(Codec):
    def __init__(self, method: str) -> None:
        if method not in ("int8", "fp16"):
            raise ValueError(f"method must be int8 or fp16, got {method!r}")
        self.name = method

    def prepare(self) -> None:
        _codec(self.name)

    def parts(self, rows: int, cols: int, space: int | None = None) -> list[PartSpec]:
        if self.name == "fp16":
            return [("h", (rows, cols), torch.float16)]
        width = int8_row_bytes(cols)
        if width >= 4 * cols:
            return self.raw(rows, cols)
        return [("q", (rows, width), torch.uint8)]

    def encode(self, m: torch.Tensor, memory: Memory = None, seeds: Seeds = 0, valid: list[int] | None = None) -> Parts:
        batch, rows, cols = m.shape
        codec = _codec(self.name)
        if self.name == "fp16":
            return {"h": codec.encode(m.float().contiguous())}
        if self.is_raw(rows, cols):
            return {"raw": m.float()}
        _, context, _ = _fbgemm()
        q = codec.encode(m.float().reshape(-1).contiguous(), context(row_dim=cols))
        return {"q": q.view(batch, rows, -1)}

    def decode(self, parts: Parts, rows: int, cols: int) -> torch.Tensor:
        codec = _codec(self.name)
        if "raw" in parts:
            return parts["raw"].float()
        if "h" in parts:
            return codec.decode(parts["h"]).float()
        q = parts["q"]
        _, context, _ = _fbgemm()
        ctx = context(row_dim=cols, row_dim_quant=q.shape[-1])
        return codec.decode(q.reshape(-1).contiguous(), ctx).view(q.shape[0], rows, cols)
