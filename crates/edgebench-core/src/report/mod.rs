//! Exporters: result files (written atomically) and the terminal summary.

pub mod compare_md;
pub mod export;
pub mod files;
pub mod table;

pub use files::{atomic_write, file_timestamp, perf_file_name, sanitize, PerfLine, RunSummary};
pub use table::render_summary;
