//! Studies: several experiments, or the steps of one, run as one plan and judged together (the
//! FP8 KV-cache calibration A/B, the quantization frontier, the one-model step studies).

pub mod fp8_kv;
pub mod quant;
pub mod steps;
