//! Studies: several experiments run as one plan and judged together (the FP8 KV-cache
//! calibration A/B, the quantization frontier).

pub mod fp8_kv;
pub mod quant;
