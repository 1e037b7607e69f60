//! Model quantization through llama.cpp's own `llama_model_quantize`, as `llama-quantize` runs it:
//! the output is written beside its final name and renamed into place only when complete.

use std::ffi::CString;
use std::path::Path;

use edgebench_core::experiment::QuantizeJob;

use crate::engine::backend;

/// Quantizes `job.source` into `job.output` (blocking; seconds to minutes by model size).
pub fn quantize(job: &QuantizeJob) -> Result<(), String> {
    backend(false).map_err(|e| e.to_string())?;
    // A name of this process's own, so two studies of one source never write one file.
    let partial = job
        .output
        .with_extension(format!("gguf.{}.partial", std::process::id()));
    let c = |p: &Path| {
        CString::new(p.to_string_lossy().as_bytes())
            .map_err(|_| format!("{}: a path with a NUL byte", p.display()))
    };
    let (src, dst) = (c(&job.source)?, c(&partial)?);
    let file_type = u32::try_from(job.file_type)
        .map_err(|_| format!("file type {} is out of range", job.file_type))?;
    // SAFETY: llama_model_quantize_default_params returns a plain struct by value; the pointers
    // handed to llama_model_quantize (two NUL-terminated paths, the params) outlive the call, and
    // the params' own pointers (imatrix, overrides) stay null as the defaults leave them.
    let rc = unsafe {
        let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
        params.nthread = i32::try_from(job.threads).unwrap_or(i32::MAX);
        params.ftype = file_type as _;
        params.allow_requantize = job.allow_requantize;
        llama_cpp_sys_2::llama_model_quantize(src.as_ptr(), dst.as_ptr(), &params)
    };
    if rc != 0 {
        let _ = std::fs::remove_file(&partial);
        return Err(format!(
            "{}: llama.cpp could not quantize it (status {rc})",
            job.source.display()
        ));
    }
    // On disk before it takes its final name, so a crash never leaves a short file there.
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::rename(&partial, &job.output).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        format!("{}: {e}", job.output.display())
    })
}
