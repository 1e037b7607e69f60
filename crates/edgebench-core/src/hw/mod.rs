//! Hardware: what the machine is (`detect`, `gpu`), what it can do (`bench`), its power and
//! temperature sensors (`sensors`), and settling it between phases (`settle`).

pub mod bench;
pub mod detect;
pub mod gpu;
pub mod sensors;
pub mod settle;

pub use detect::{detect, HardwareInfo};
pub mod text;
