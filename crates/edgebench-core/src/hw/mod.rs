//! Hardware: what the machine is (`detect`, `gpu`), what it can do (`bench`), its power and
//! temperature sensors (`sensors`), settling it between phases (`settle`), and pinning threads
//! to CPUs (`affinity`).

pub mod affinity;
pub mod bench;
pub mod detect;
pub mod gpu;
pub mod sensors;
pub mod settle;

pub use detect::{detect, HardwareInfo};
pub mod text;
