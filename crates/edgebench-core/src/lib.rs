//! edgebench-core: the library behind the `edgebench` binary: targets, workloads, the runner,
//! metrics and statistics, the model catalog, the resource monitor, the exporters and reports,
//! and the compliance analysis.
#![forbid(unsafe_code)]

pub mod backend;
pub mod catalog;
pub mod clock;
pub mod compare;
pub mod compliance;
pub mod eval;
pub mod experiment;
pub mod hw;
pub mod metrics;
pub mod monitor;
pub mod record;
pub mod report;
pub mod repro;
pub mod results;
pub mod runner;
pub mod stats;
pub mod store;
pub mod study;
pub mod workload;
