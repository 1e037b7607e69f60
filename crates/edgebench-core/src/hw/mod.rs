//! Hardware: what the machine is (`detect`, `gpu`), what it can do (`bench`), its power and
//! temperature sensors (`sensors`), settling it between phases (`settle`), and pinning threads
//! to CPUs (`affinity`).

pub mod affinity;
pub mod bench;
pub mod detect;
pub mod gpu;
pub mod interference;
pub mod sensors;
pub mod settle;

pub use detect::{detect, HardwareInfo};
pub mod text;

/// Why GPU compute is not measured on this machine and build.
pub fn gpu_skip_reason(h: &HardwareInfo) -> String {
    if h.gpus.is_empty() {
        return "no GPU detected".to_string();
    }
    let gpu_backends: Vec<&String> = h.backends_built.iter().filter(|b| *b != "CPU").collect();
    if gpu_backends.is_empty() {
        format!(
            "this build of llama.cpp has no GPU backend (the machine has {} {}; rebuild with its backend)",
            h.gpus[0].vendor, h.gpus[0].model
        )
    } else {
        "GPU GEMM needs a GPU BLAS this build does not link; see the engine's prefill rate"
            .to_string()
    }
}
