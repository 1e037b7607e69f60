//! What the machine can do: f32 GEMM GFLOPS (single and multi-thread), memory bandwidth
//! (read, write, copy, triad) and the decode-speed ceiling that bandwidth implies.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::stats;

/// One GEMM measurement: C = A x B, n x n f32 matrices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmResult {
    pub n: usize,
    pub threads: usize,
    pub best_gflops: f64,
    pub median_gflops: f64,
    /// 2 n^3 / mean time: the figure the hardware-report document gives (its runs' mean time).
    #[serde(default)]
    pub mean_gflops: f64,
    /// Every timed run (after the warm-up), GFLOPS.
    pub runs_gflops: Vec<f64>,
}

/// One memory-bandwidth kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandwidthResult {
    /// "read", "write", "copy" or "triad".
    pub kernel: String,
    pub threads: usize,
    /// Bytes each array holds (well beyond the last-level cache).
    pub array_bytes: usize,
    pub best_gb_s: f64,
    pub median_gb_s: f64,
    /// Bytes moved / mean time over the runs (the hardware-report document's figure).
    #[serde(default)]
    pub mean_gb_s: f64,
}

/// The decode-speed bound for a model: memory bandwidth / bytes read per token.
///
/// A dense model reads every weight once per generated token, so the bytes per token are its
/// tensor data. The callers pass the model file's size for it (`ModelInfo::file_size_bytes`):
/// the GGUF header, metadata and tokenizer vocabulary on top of the tensors are a few MB at most,
/// so the figure is a slight overestimate and the ceiling slightly low (for SmolLM2-135M Q4_1,
/// 98 MB, by about 2%). The KV cache read per token is left out (small at short contexts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    pub model: String,
    /// Bytes read per generated token: the model file's size, standing in for its tensor data
    /// (see [`Ceiling`]).
    pub bytes_per_token: u64,
    pub bandwidth_gb_s: f64,
    pub ceiling_tokens_per_s: f64,
    /// Decode rate measured on this machine, when measured.
    pub measured_tokens_per_s: Option<f64>,
    /// measured / ceiling.
    pub efficiency: Option<f64>,
}

/// GFLOPS of an n x n x n GEMM that took `seconds` (2 n^3 floating-point operations).
pub fn gemm_gflops(n: usize, seconds: f64) -> f64 {
    2.0 * (n as f64).powi(3) / seconds / 1e9
}

/// GB/s for `bytes` moved in `seconds`.
pub fn gb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e9
}

/// Tokens/s a memory-bound decoder cannot exceed.
pub fn decode_ceiling(bandwidth_gb_s: f64, bytes_per_token: u64) -> f64 {
    if bytes_per_token == 0 {
        return 0.0;
    }
    bandwidth_gb_s * 1e9 / bytes_per_token as f64
}

/// Builds the ceiling line for a model; `bytes_per_token` is the model file's size (see
/// [`Ceiling`]).
pub fn ceiling(
    model: &str,
    bytes_per_token: u64,
    bandwidth_gb_s: f64,
    measured: Option<f64>,
) -> Ceiling {
    let c = decode_ceiling(bandwidth_gb_s, bytes_per_token);
    Ceiling {
        model: model.to_string(),
        bytes_per_token,
        bandwidth_gb_s,
        ceiling_tokens_per_s: c,
        measured_tokens_per_s: measured,
        efficiency: measured.filter(|_| c > 0.0).map(|m| m / c),
    }
}

/// The rate over the runs' mean time, from per-run rates of one fixed amount of work (`work` /
/// rate is each run's time): the harmonic mean of the rates.
pub fn rate_from_mean_time(rates: &[f64]) -> f64 {
    let times: Vec<f64> = rates
        .iter()
        .filter(|r| **r > 0.0)
        .map(|r| 1.0 / r)
        .collect();
    let best = rates.iter().copied().fold(0.0, f64::max);
    match stats::mean(&times) {
        // Never above the best run (one run: 1 / (1 / r) can round one ulp over r).
        Ok(t) if t > 0.0 && times.len() == rates.len() => (1.0 / t).min(best),
        _ => 0.0,
    }
}

fn best_and_median(xs: &[f64]) -> (f64, f64) {
    let best = xs.iter().copied().fold(0.0, f64::max);
    (best, stats::median(xs).unwrap_or(0.0))
}

/// Multiplies n x n matrices `runs` times after one warm-up, on `threads` threads.
pub fn gemm(n: usize, threads: usize, runs: usize) -> GemmResult {
    let a: Vec<f32> = (0..n * n).map(|i| ((i % 17) as f32 - 8.0) / 16.0).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i % 13) as f32 - 6.0) / 16.0).collect();
    let mut c = vec![0f32; n * n];
    let mut times = Vec::with_capacity(runs);
    for i in 0..=runs {
        let t = Instant::now();
        matmul(n, &a, &b, &mut c, threads);
        std::hint::black_box(&c);
        if i > 0 {
            times.push(gemm_gflops(n, t.elapsed().as_secs_f64()));
        }
    }
    let (best, median) = best_and_median(&times);
    GemmResult {
        n,
        threads,
        best_gflops: best,
        median_gflops: median,
        mean_gflops: rate_from_mean_time(&times),
        runs_gflops: times,
    }
}

/// The size from which [`matmul`] splits C into bands, one per thread.
const BAND_SPLIT_MIN_N: usize = 1024;

/// C = A x B for row-major n x n matrices, with faer's packed SIMD kernels (AVX2, AVX-512,
/// NEON, chosen at run time). With several threads and n >= 1024, each thread computes its own
/// band of C's rows single-threaded, which scales better than faer's own parallel split on few
/// cores (2 threads, n = 2048: 0.93 of OpenBLAS against 0.78); smaller products use faer's split.
pub fn matmul(n: usize, a: &[f32], b: &[f32], c: &mut [f32], threads: usize) {
    if threads > 1 && n < BAND_SPLIT_MIN_N {
        faer::linalg::matmul::matmul(
            faer::MatMut::from_row_major_slice_mut(c, n, n),
            faer::Accum::Replace,
            faer::MatRef::from_row_major_slice(a, n, n),
            faer::MatRef::from_row_major_slice(b, n, n),
            1.0f32,
            faer::Par::rayon(threads),
        );
        return;
    }
    let band = |rows: usize, a: &[f32], c: &mut [f32]| {
        faer::linalg::matmul::matmul(
            faer::MatMut::from_row_major_slice_mut(c, rows, n),
            faer::Accum::Replace,
            faer::MatRef::from_row_major_slice(a, rows, n),
            faer::MatRef::from_row_major_slice(b, n, n),
            1.0f32,
            faer::Par::Seq,
        );
    };
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        band(n, a, c);
        return;
    }
    let rows_per = n.div_ceil(threads);
    std::thread::scope(|s| {
        for (a_band, c_band) in a.chunks(rows_per * n).zip(c.chunks_mut(rows_per * n)) {
            let rows = c_band.len() / n;
            s.spawn(move || band(rows, a_band, c_band));
        }
    });
}

/// Splits `len` elements into `threads` contiguous ranges.
fn ranges(len: usize, threads: usize) -> Vec<std::ops::Range<usize>> {
    let threads = threads.max(1);
    let step = len.div_ceil(threads);
    (0..threads)
        .map(|t| (t * step).min(len)..((t + 1) * step).min(len))
        .collect()
}

fn sum8(x: &[f64]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = x.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f64>() + rest
}

/// Runs `work` on each job on a thread of its own and returns the seconds from the first
/// thread's start to the last one's end, counted once every thread is running (a barrier): on
/// a shared VM starting a thread on an idle virtual CPU can take milliseconds, as long as a
/// whole pass over a 128 MiB array, and that is not memory speed (STREAM's OpenMP threads are
/// already running when its timer starts). With no more jobs than CPUs, each thread is pinned
/// to a CPU of its own, as STREAM runs with `OMP_PROC_BIND=spread`.
fn timed_jobs<T: Send>(jobs: Vec<T>, work: impl Fn(T) + Sync) -> f64 {
    let ready = std::sync::Barrier::new(jobs.len());
    let cpus = super::affinity::allowed_cpus();
    let pin = cpus.len() >= jobs.len();
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let workers: Vec<_> = jobs
            .into_iter()
            .enumerate()
            .map(|(i, job)| {
                let (ready, work) = (&ready, &work);
                let cpu = cpus.get(i).copied().filter(|_| pin);
                s.spawn(move || {
                    if let Some(cpu) = cpu {
                        super::affinity::pin_current_thread(&[cpu]);
                    }
                    ready.wait();
                    let start = Instant::now();
                    work(job);
                    (start, Instant::now())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    match (
        spans.iter().map(|s| s.0).min(),
        spans.iter().map(|s| s.1).max(),
    ) {
        (Some(start), Some(end)) => end.duration_since(start).as_secs_f64(),
        _ => 0.0,
    }
}

/// Runs `f` on each thread's part of the arrays; see [`timed_jobs`].
fn timed_parallel<F>(threads: usize, len: usize, f: F) -> f64
where
    F: Fn(std::ops::Range<usize>) + Sync,
{
    timed_jobs(ranges(len, threads), f)
}

/// STREAM-style bandwidth: arrays of `array_bytes` each, `threads` threads, `runs` timed runs
/// after a warm-up. Each thread first touches its own part (so pages sit near it). Bytes counted
/// as STREAM does: read 8, write 8, copy 16, triad 24 per element.
pub fn bandwidth(array_bytes: usize, threads: usize, runs: usize) -> Vec<BandwidthResult> {
    let len = (array_bytes / 8).max(8);
    let threads = threads.max(1);
    let mut a = vec![0f64; len];
    let mut b = vec![0f64; len];
    let mut c = vec![0f64; len];
    // First touch, in parallel, with the same split as the kernels.
    {
        let parts = ranges(len, threads);
        std::thread::scope(|s| {
            let (mut ra, mut rb, mut rc) = (&mut a[..], &mut b[..], &mut c[..]);
            for r in &parts {
                let n = r.len();
                let (pa, ta) = ra.split_at_mut(n);
                let (pb, tb) = rb.split_at_mut(n);
                let (pc, tc) = rc.split_at_mut(n);
                (ra, rb, rc) = (ta, tb, tc);
                s.spawn(move || {
                    pa.fill(1.0);
                    pb.fill(2.0);
                    pc.fill(0.5);
                });
            }
        });
    }
    let mut out = Vec::new();
    let kernels: [(&str, usize); 4] = [("read", 8), ("write", 8), ("copy", 16), ("triad", 24)];
    for (kernel, bytes_per_elem) in kernels {
        let mut rates = Vec::with_capacity(runs);
        for i in 0..=runs {
            let secs = match kernel {
                "read" => {
                    let a = &a;
                    timed_parallel(threads, len, |r| {
                        std::hint::black_box(sum8(&a[r]));
                    })
                }
                "write" => par_mut(threads, &mut a, |x| x.fill(1.5)),
                "copy" => par_zip(threads, &mut c, &a, |dst, src| dst.copy_from_slice(src)),
                _ => {
                    let mut jobs = Vec::new();
                    let mut rest = &mut a[..];
                    for r in ranges(len, threads) {
                        let (mine, tail) = rest.split_at_mut(r.len());
                        rest = tail;
                        jobs.push((mine, &b[r.clone()], &c[r]));
                    }
                    timed_jobs(jobs, |(mine, x, y)| {
                        for ((o, p), q) in mine.iter_mut().zip(x).zip(y) {
                            *o = p + 3.0 * q;
                        }
                    })
                }
            };
            if i > 0 {
                rates.push(gb_per_s(len * bytes_per_elem, secs));
            }
        }
        std::hint::black_box((&a, &b, &c));
        let (best, median) = best_and_median(&rates);
        out.push(BandwidthResult {
            kernel: kernel.to_string(),
            threads,
            array_bytes: len * 8,
            best_gb_s: best,
            median_gb_s: median,
            mean_gb_s: rate_from_mean_time(&rates),
        });
    }
    out
}

fn par_mut(threads: usize, x: &mut [f64], f: impl Fn(&mut [f64]) + Sync) -> f64 {
    let mut jobs = Vec::new();
    let mut rest = x;
    for r in ranges(rest.len(), threads) {
        let (mine, tail) = rest.split_at_mut(r.len());
        rest = tail;
        jobs.push(mine);
    }
    timed_jobs(jobs, f)
}

fn par_zip(
    threads: usize,
    dst: &mut [f64],
    src: &[f64],
    f: impl Fn(&mut [f64], &[f64]) + Sync,
) -> f64 {
    let mut jobs = Vec::new();
    let mut rest = dst;
    for r in ranges(rest.len(), threads) {
        let (mine, tail) = rest.split_at_mut(r.len());
        rest = tail;
        jobs.push((mine, &src[r]));
    }
    timed_jobs(jobs, |(d, s)| f(d, s))
}

/// Array size for the bandwidth test: four times the last-level cache (STREAM's rule), at least
/// 64 MiB, at most an eighth of available memory.
pub fn bandwidth_array_bytes(llc_kb: Option<u64>, available_mb: u64) -> usize {
    let llc = llc_kb.unwrap_or(32 * 1024) as usize * 1024;
    let want = (4 * llc).max(64 << 20);
    let cap = (available_mb as usize * 1_000_000 / 8).max(8 << 20);
    want.min(cap)
}

/// The hardware-report document's bandwidth block: 256 MB per array.
pub const DOCUMENT_BLOCK_BYTES: usize = 256 << 20;

#[cfg(test)]
mod tests {
    #[test]
    fn the_mean_time_rate_is_the_harmonic_mean_of_the_rates() {
        // 1 s and 3 s for the same work: mean time 2 s, so half the 1-second rate.
        let r = super::rate_from_mean_time(&[30.0, 10.0]);
        assert!((r - 15.0).abs() < 1e-9, "{r}");
        assert_eq!(super::rate_from_mean_time(&[]), 0.0);
        assert_eq!(super::rate_from_mean_time(&[5.0, 0.0]), 0.0);
        let one = 56.46004738315744;
        assert!(super::rate_from_mean_time(&[one]) <= one);
    }

    use super::*;

    #[test]
    fn formulas() {
        assert!((gemm_gflops(1000, 1.0) - 2.0).abs() < 1e-12);
        assert!((gb_per_s(2_000_000_000, 2.0) - 1.0).abs() < 1e-12);
        assert!((decode_ceiling(100.0, 1_000_000_000) - 100.0).abs() < 1e-9);
        assert_eq!(decode_ceiling(100.0, 0), 0.0);
        let c = ceiling("m", 2_000_000_000, 40.0, Some(10.0));
        assert!((c.ceiling_tokens_per_s - 20.0).abs() < 1e-9);
        assert!((c.efficiency.unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(ceiling("m", 1, 1.0, None).efficiency, None);
    }

    #[test]
    fn matmul_is_a_matrix_product() {
        // 67: faer's own split; 1031: one band per thread, of unequal heights with 2 and 3.
        for (n, threads) in [(67, 1), (67, 2), (1031, 2), (1031, 3)] {
            let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 - 3.0).collect();
            let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 - 2.0).collect();
            let mut c = vec![f32::NAN; n * n];
            matmul(n, &a, &b, &mut c, threads);
            assert!(c.iter().all(|x| x.is_finite()), "every row written");
            for (i, j) in [
                (0, 0),
                (3, 60),
                (66, 66),
                (40, 1),
                (n - 1, n - 1),
                (n / 2, 7),
            ] {
                let want: f32 = (0..n).map(|k| a[i * n + k] * b[k * n + j]).sum();
                assert_eq!(c[i * n + j], want, "({i},{j}) threads {threads}");
            }
        }
    }

    #[test]
    fn ranges_cover_everything_once() {
        let r = ranges(10, 3);
        assert_eq!(r, vec![0..4, 4..8, 8..10]);
        assert_eq!(ranges(2, 4).iter().map(|r| r.len()).sum::<usize>(), 2);
        assert!((sum8(&[1.0; 19]) - 19.0).abs() < 1e-12);
    }

    #[test]
    fn bandwidth_runs_every_kernel_and_keeps_the_arrays_right() {
        let r = bandwidth(1 << 20, 2, 2);
        let names: Vec<&str> = r.iter().map(|b| b.kernel.as_str()).collect();
        assert_eq!(names, ["read", "write", "copy", "triad"]);
        assert!(r
            .iter()
            .all(|b| b.best_gb_s > 0.0 && b.best_gb_s >= b.median_gb_s));
        assert_eq!(bandwidth_array_bytes(Some(1024), 100_000), 64 << 20);
        assert_eq!(bandwidth_array_bytes(Some(105 * 1024), 100_000), 420 << 20);
        assert_eq!(bandwidth_array_bytes(None, 80), 10_000_000);
    }

    #[test]
    fn gemm_reports_positive_rates() {
        let g = gemm(64, 1, 3);
        assert_eq!(g.runs_gflops.len(), 3);
        assert!(g.best_gflops >= g.median_gflops && g.median_gflops > 0.0);
    }
}
