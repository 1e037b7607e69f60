//! Studies: several experiments run as one plan and judged together (the FP8 KV-cache
//! calibration A/B so far).

pub mod fp8_kv;
