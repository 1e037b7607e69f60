//! Builds the report document from what was read: setup rows, performance and capability
//! rows, the trade-off, verdicts, failures, the community row, comparisons and chart series.

use std::collections::{BTreeMap, BTreeSet};

use super::document::*;
use super::input::{ReportInput, RunUnitKey};
use super::verdict;
use crate::backend::TargetInfo;
use crate::compare::{self, CompareOptions, Criteria, ResultSet};
use crate::repro::Environment;
use crate::results::UnitKey;

/// The recorded GPUs, one line each.
fn gpu_lines(e: &Environment) -> Vec<String> {
    e.hardware.as_ref().map_or_else(Vec::new, |h| {
        h.gpus
            .iter()
            .map(|g| {
                let vram = g
                    .vram_mb
                    .map_or_else(|| "VRAM unknown".to_string(), |v| format!("{v} MB VRAM"));
                format!("{} ({vram}, {})", gpu_name(g), g.backend)
            })
            .collect()
    })
}

fn backends(e: &Environment) -> Vec<String> {
    e.hardware
        .as_ref()
        .map_or_else(Vec::new, |h| h.backends_built.clone())
}

fn simd(e: &Environment) -> Vec<String> {
    e.hardware
        .as_ref()
        .map_or_else(Vec::new, |h| h.cpu.simd.clone())
}

/// The distinct engine system-info lines of some targets, in order.
fn system_info<'a>(targets: impl Iterator<Item = &'a TargetInfo>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in targets.filter_map(|t| t.system_info.as_deref()) {
        let line = line.trim();
        if !line.is_empty() && !out.iter().any(|l| l == line) {
            out.push(line.to_string());
        }
    }
    out
}

/// A GPU's name with its vendor, e.g. "NVIDIA GeForce RTX 4060".
fn gpu_name(g: &crate::hw::gpu::GpuInfo) -> String {
    if g.model
        .to_ascii_lowercase()
        .contains(&g.vendor.to_ascii_lowercase())
    {
        g.model.clone()
    } else {
        format!("{} {}", g.vendor, g.model)
    }
}

/// The device a model ran on, for the community row: the GPU when one was used, else the CPU.
/// A GPU counts as used when VRAM use was measured (peak above 0), or when the machine has one
/// the target could use: any GPU for a server (it has its own build), and for the embedded engine
/// a GPU whose llama.cpp backend the binary was built with (Vulkan drives every vendor's). The
/// GPU named is the usable one with the most VRAM, NVIDIA first when VRAM was measured (NVML).
pub fn device_name(e: &Environment, target: &TargetInfo, peak_vram_mb: Option<f64>) -> String {
    let vram_used = peak_vram_mb.is_some_and(|v| v > 0.0);
    let gpus = e.hardware.as_ref().map_or(&[][..], |h| h.gpus.as_slice());
    let built = e
        .hardware
        .as_ref()
        .map_or(&[][..], |h| h.backends_built.as_slice());
    let usable = |g: &&crate::hw::gpu::GpuInfo| {
        vram_used
            || target.kind != "embedded"
            || built.iter().any(|b| *b == g.backend || b == "Vulkan")
    };
    let best = gpus.iter().filter(usable).max_by_key(|g| {
        (
            vram_used && g.vendor.eq_ignore_ascii_case("NVIDIA"),
            g.vram_mb.unwrap_or(0),
        )
    });
    match best {
        Some(g) => gpu_name(g),
        None if vram_used => "NVIDIA GPU (model not recorded)".into(),
        None => e.cpu_model.clone(),
    }
}

/// MB (10^6 bytes) in MiB (2^20 bytes).
fn mb_to_mib(mb: f64) -> f64 {
    mb * 1e6 / f64::from(1u32 << 20)
}

fn setup_rows(input: &ReportInput) -> Vec<SetupRow> {
    let config_file = |id: &str| {
        input
            .configs
            .iter()
            .find(|c| c.value.experiment_id == id)
            .map(|c| c.file.clone())
    };
    let mut rows = Vec::new();
    for r in &input.runs {
        let r = &r.value;
        let e = &r.environment;
        let engines: BTreeSet<String> = r.models.iter().map(|m| m.target.engine.clone()).collect();
        rows.push(SetupRow {
            id: r.run_id.clone(),
            kind: "run".into(),
            started: r.started.clone(),
            config_hash: r.config_hash.clone(),
            config_file: config_file(&r.run_id),
            edgebench_version: e.edgebench_version.clone(),
            edgebench_commit: e.edgebench_commit.clone(),
            os: e.os.clone(),
            kernel: e.kernel.clone(),
            cpu_model: e.cpu_model.clone(),
            physical_cores: e.physical_cores,
            logical_cores: e.logical_cores,
            ram_total_mb: e.ram_total_mb,
            engines: engines.into_iter().collect(),
            threads: r.models.iter().find_map(|m| m.target.threads),
            seed: r.plan.seed,
            runs: r.plan.runs,
            warmup: r.plan.warmup,
            gpus: gpu_lines(e),
            llama_cpp_backends: backends(e),
            engine_system_info: system_info(r.models.iter().map(|m| &m.target)),
            simd: simd(e),
        });
    }
    for ev in &input.evals {
        let ev = &ev.value;
        let e = &ev.environment;
        if rows.iter().any(|r| r.id == ev.experiment_id) {
            continue;
        }
        rows.push(SetupRow {
            id: ev.experiment_id.clone(),
            kind: "eval".into(),
            started: ev.created.clone(),
            config_hash: ev.config_hash.clone(),
            config_file: config_file(&ev.experiment_id),
            edgebench_version: e.edgebench_version.clone(),
            edgebench_commit: e.edgebench_commit.clone(),
            os: e.os.clone(),
            kernel: e.kernel.clone(),
            cpu_model: e.cpu_model.clone(),
            physical_cores: e.physical_cores,
            logical_cores: e.logical_cores,
            ram_total_mb: e.ram_total_mb,
            engines: vec![ev.target.engine.clone()],
            threads: ev.target.threads,
            seed: ev.seed,
            runs: u32::try_from(ev.items).unwrap_or(u32::MAX),
            warmup: 0,
            gpus: gpu_lines(e),
            llama_cpp_backends: backends(e),
            engine_system_info: system_info(std::iter::once(&ev.target)),
            simd: simd(e),
        });
    }
    rows
}

fn perf_rows(input: &ReportInput) -> Vec<PerfRow> {
    let mut rows = Vec::new();
    for r in &input.runs {
        let r = &r.value;
        for m in &r.models {
            for u in &m.units {
                let s = &u.summary;
                let metrics = PERF_METRICS
                    .iter()
                    .filter_map(|(name, get)| get(s).as_ref().map(|v| (name.to_string(), v.into())))
                    .collect();
                rows.push(PerfRow {
                    run_id: r.run_id.clone(),
                    config_hash: r.config_hash.clone(),
                    model: m.model.name.clone(),
                    publisher: m.model.publisher.clone(),
                    format: m.model.format.clone(),
                    quantization: m.model.quantization.clone(),
                    parameters: m.model.parameters,
                    scenario: s.scenario.clone(),
                    target_kind: m.target.kind.clone(),
                    engine: m.target.engine.clone(),
                    requests: s.requests,
                    successes: s.successes,
                    success_rate: s.success_rate,
                    success_rate_ci_low: s.success_rate_ci.as_ref().map(|c| c.lower),
                    success_rate_ci_high: s.success_rate_ci.as_ref().map(|c| c.upper),
                    metrics,
                    peak_rss_mb: s.peak_rss_mb.or(u.monitor.peak_rss_mb),
                    mean_cpu_percent: u.monitor.mean_cpu_percent,
                    json_valid_rate: s.json_valid_rate,
                    model_load_ms: m.target.model_load_ms,
                    context_tokens: u.context_tokens,
                    energy_j: u.monitor.energy_j,
                    joules_per_output_token: u.monitor.joules_per_output_token,
                    peak_vram_mb: u.monitor.peak_vram_mb,
                    max_temp_c: u.monitor.max_temp_c,
                    busy_machine: u.machine_warning(),
                });
            }
        }
    }
    rows
}

fn capability_rows(input: &ReportInput) -> Vec<CapabilityRow> {
    input
        .evals
        .iter()
        .map(|e| {
            let e = &e.value;
            CapabilityRow {
                experiment_id: e.experiment_id.clone(),
                config_hash: e.config_hash.clone(),
                task: e.task.clone(),
                method: e.method_in_setting(),
                model: e.model.name.clone(),
                format: e.model.format.clone(),
                quantization: e.model.quantization.clone(),
                items: e.items,
                items_total: e.items_total,
                items_per_s: e.items_per_s,
                scores: e.scores.clone(),
                confusions: e.confusions.iter().take(5).cloned().collect(),
                sandbox: e.sandbox.clone(),
                busy_machine: crate::results::machine_warning(
                    e.settle.as_ref(),
                    e.monitor.as_ref(),
                ),
            }
        })
        .collect()
}

/// The pooled mean of a metric over units: sum of means weighted by their counts.
fn pooled_mean<'a>(stats: impl Iterator<Item = &'a MetricStats>) -> Option<(f64, usize)> {
    let (sum, n) = stats.fold((0.0, 0usize), |(s, n), m| {
        (s + m.mean * m.n as f64, n + m.n)
    });
    (n > 0).then(|| (sum / n as f64, n))
}

fn same_model(row: &PerfRow, name: &str, quantization: &str) -> bool {
    row.model == name && row.quantization == quantization
}

fn tradeoff(perf: &[PerfRow], caps: &[CapabilityRow]) -> Vec<TradeoffPoint> {
    let mut out = Vec::new();
    // Points compete only with points of the same task scored the same way.
    let mut groups: Vec<(String, String)> = Vec::new();
    for c in caps {
        let Some(acc) = c.scores.get("accuracy") else {
            continue;
        };
        let decode = pooled_mean(
            perf.iter()
                .filter(|r| same_model(r, &c.model, &c.quantization))
                .filter_map(|r| r.metrics.get("decode_tokens_per_s")),
        );
        if let Some((rate, n)) = decode {
            groups.push((c.task.clone(), c.method.clone()));
            out.push(TradeoffPoint {
                model: c.model.clone(),
                format: c.format.clone(),
                quantization: c.quantization.clone(),
                task: c.task.clone(),
                accuracy: acc.clone(),
                decode_tokens_per_s: rate,
                decode_n: n,
                frontier: false,
            });
        }
    }
    let keys: std::collections::BTreeSet<&(String, String)> = groups.iter().collect();
    for key in keys {
        let idx: Vec<usize> = (0..out.len()).filter(|&i| &groups[i] == key).collect();
        let points: Vec<(f64, f64)> = idx
            .iter()
            .map(|&i| (out[i].decode_tokens_per_s, out[i].accuracy.value))
            .collect();
        for (&i, on) in idx.iter().zip(pareto_front(&points)) {
            out[i].frontier = on;
        }
    }
    out
}

/// Which of `(speed, accuracy)` points no other point dominates (at least as good on both and
/// better on one): the trade-offs worth choosing among.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<bool> {
    points
        .iter()
        .map(|&(x, y)| {
            !points
                .iter()
                .any(|&(ox, oy)| ox >= x && oy >= y && (ox > x || oy > y))
        })
        .collect()
}

fn verdicts(perf: &[PerfRow], caps: &[CapabilityRow]) -> Vec<VerdictRow> {
    let mut out = Vec::new();
    for r in perf {
        for t in verdict::performance() {
            let value = if t.metric == "peak_rss_mb" {
                r.peak_rss_mb
            } else {
                r.metrics.get(t.metric).map(|m| m.mean)
            };
            let Some(value) = value else { continue };
            if let Some(level) = t.judge(value) {
                out.push(VerdictRow {
                    model: model_label(&r.model, &r.quantization),
                    context: r.scenario.clone(),
                    metric: t.metric.into(),
                    value,
                    unit: t.unit.into(),
                    verdict: level,
                    rule: t.rule(),
                });
            }
        }
    }
    for c in caps {
        for t in verdict::for_task(&c.task) {
            let Some(score) = c.scores.get(t.metric) else {
                continue;
            };
            if let Some(level) = t.judge(score.value) {
                out.push(VerdictRow {
                    model: model_label(&c.model, &c.quantization),
                    context: c.task.clone(),
                    metric: t.metric.into(),
                    value: score.value,
                    unit: t.unit.into(),
                    verdict: level,
                    rule: t.rule(),
                });
            }
        }
    }
    out
}

fn failures(input: &ReportInput) -> Vec<FailureRow> {
    let mut out = Vec::new();
    for r in &input.runs {
        for m in &r.value.models {
            for u in &m.units {
                let s = &u.summary;
                for (kind, count) in &s.failures {
                    out.push(FailureRow {
                        run_id: r.value.run_id.clone(),
                        model: model_label(&m.model.name, &m.model.quantization),
                        scenario: s.scenario.clone(),
                        kind: kind.clone(),
                        count: *count,
                        detail: format!("{count} of {} measured requests", s.requests),
                    });
                }
            }
        }
    }
    for f in &input.failed_units {
        out.push(FailureRow {
            run_id: f.run_id.clone(),
            model: model_label(&f.key.model, &f.key.quantization),
            scenario: f.key.scenario.clone(),
            kind: "unit failed".into(),
            count: 1,
            detail: f.error.clone(),
        });
    }
    out
}

fn community(input: &ReportInput, perf: &[PerfRow]) -> Vec<CommunityRow> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &input.runs {
        let r = &r.value;
        for m in &r.models {
            let key = (m.model.name.clone(), m.model.quantization.clone());
            if !seen.insert(key) {
                continue;
            }
            let rows: Vec<&PerfRow> = perf
                .iter()
                .filter(|p| same_model(p, &m.model.name, &m.model.quantization))
                .collect();
            let Some((rate, _)) = pooled_mean(
                rows.iter()
                    .filter_map(|p| p.metrics.get("decode_tokens_per_s")),
            ) else {
                continue;
            };
            let gen = pooled_mean(rows.iter().filter_map(|p| p.metrics.get("output_tokens")))
                .map_or(0.0, |(g, _)| g);
            let peak_vram_mb = m
                .units
                .iter()
                .filter_map(|u| u.monitor.peak_vram_mb)
                .reduce(f64::max);
            out.push(CommunityRow {
                device: device_name(&r.environment, &m.target, peak_vram_mb),
                source: format!(
                    "{}/{} ({} {})",
                    m.model.publisher, m.model.name, m.model.format, m.model.quantization
                ),
                params_m: m.model.parameters as f64 / 1e6,
                // The embedded engine leaves llama.cpp's default K/V cache type (F16).
                kv_cache: if m.target.kind == "embedded" {
                    "f16".into()
                } else {
                    "-".into()
                },
                gen_tokens: gen,
                mean_tokens_per_s: rate,
                peak_vram_mib: peak_vram_mb.map(mb_to_mib),
            });
        }
    }
    out
}

fn comparisons(input: &ReportInput) -> Vec<ModelComparison> {
    // One side per (run, model), in input order.
    let mut sides: Vec<(String, ResultSet)> = Vec::new();
    for r in &input.runs {
        for m in &r.value.models {
            let label = model_label(&m.model.name, &m.model.quantization);
            let lines: Vec<_> = input
                .lines
                .iter()
                .filter(|l| l.run_id == r.value.run_id && UnitKey::of_line(l).is_model(&m.model))
                .cloned()
                .collect();
            if !lines.iter().any(|l| !l.record.warmup) {
                continue;
            }
            let shown = if sides.iter().any(|(l, _)| *l == label) {
                format!("{label} (run {})", r.value.run_id)
            } else {
                label
            };
            sides.push((
                shown.clone(),
                ResultSet {
                    label: shown,
                    run_id: r.value.run_id.clone(),
                    lines,
                    units: m.units.clone(),
                    evals: Vec::new(),
                },
            ));
        }
    }
    let Some(((_, base), rest)) = sides.split_first() else {
        return Vec::new();
    };
    let opts = CompareOptions::default();
    rest.iter()
        .filter_map(|(_, cand)| {
            let c = compare::compare(base, cand, &Criteria::default(), &opts).ok()?;
            Some(ModelComparison {
                baseline: c.baseline,
                candidate: c.candidate,
                scenarios: c.scenarios,
            })
        })
        .collect()
}

fn latency(input: &ReportInput) -> Vec<LatencySeries> {
    let mut by: BTreeMap<RunUnitKey, Vec<f64>> = BTreeMap::new();
    for l in input.lines.iter().filter(|l| !l.record.warmup) {
        if let Some(t) = l.metrics.ttft_ms.filter(|t| t.is_finite()) {
            by.entry((l.run_id.clone(), UnitKey::of_line(l)))
                .or_default()
                .push(t);
        }
    }
    by.into_iter()
        .map(|((run_id, key), mut v)| {
            v.sort_by(f64::total_cmp);
            LatencySeries {
                run_id,
                model: key.model,
                scenario: key.scenario,
                ttft_ms: v,
            }
        })
        .collect()
}

/// At most this many points per timeline (evenly thinned).
const TIMELINE_POINTS: usize = 240;

fn timelines(input: &ReportInput) -> Vec<Timeline> {
    input
        .samples
        .iter()
        .map(|((run_id, key), s)| {
            let step = s.len().div_ceil(TIMELINE_POINTS).max(1);
            let t0 = s.first().map_or(0, |x| x.t_ns);
            let kept: Vec<_> = s.iter().step_by(step).collect();
            Timeline {
                run_id: run_id.clone(),
                model: key.model.clone(),
                scenario: key.scenario.clone(),
                t_s: kept
                    .iter()
                    .map(|x| x.t_ns.saturating_sub(t0) as f64 / 1e9)
                    .collect(),
                rss_mb: kept.iter().map(|x| x.rss_mb).collect(),
                cpu_percent: kept.iter().map(|x| f64::from(x.cpu_percent)).collect(),
            }
        })
        .collect()
}

/// Builds the report from what was read; `generated` names the time it was made.
pub fn build(input: &ReportInput, generated: time::OffsetDateTime) -> Report {
    let performance = perf_rows(input);
    let capability = capability_rows(input);
    let generated = generated.to_offset(time::UtcOffset::UTC);
    Report {
        schema_version: SCHEMA_VERSION,
        generated: generated
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        timestamp: crate::results::file_timestamp(generated),
        setup: setup_rows(input),
        tradeoff: tradeoff(&performance, &capability),
        verdicts: verdicts(&performance, &capability),
        failures: failures(input),
        community: community(input, &performance),
        comparisons: comparisons(input),
        latency: latency(input),
        timelines: timelines(input),
        performance,
        capability,
        compliance: None,
        machines: None,
        study: None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_frontier_keeps_only_undominated_points() {
        // (speed, accuracy): the slow accurate and the fast rough are both worth choosing; the
        // slower and less accurate middle one is not; a tie is not domination.
        let pts = [
            (10.0, 0.9),
            (30.0, 0.6),
            (9.0, 0.8),
            (30.0, 0.6),
            (20.0, 0.85),
        ];
        assert_eq!(pareto_front(&pts), [true, true, false, true, true]);
        assert_eq!(pareto_front(&[]), Vec::<bool>::new());
    }

    use super::*;
    use crate::hw::gpu::GpuInfo;
    use crate::hw::HardwareInfo;

    fn gpu(vendor: &str, model: &str, vram_mb: u64, backend: &str) -> GpuInfo {
        GpuInfo {
            vendor: vendor.into(),
            model: model.into(),
            vram_mb: Some(vram_mb),
            driver: None,
            backend: backend.into(),
            source: "test".into(),
        }
    }

    fn env(gpus: Vec<GpuInfo>, built: &[&str]) -> Environment {
        Environment {
            cpu_model: "AMD Ryzen 7 7840U".into(),
            hardware: Some(HardwareInfo {
                gpus,
                backends_built: built.iter().map(|b| b.to_string()).collect(),
                ..HardwareInfo::default()
            }),
            ..Environment::default()
        }
    }

    fn target(kind: &str) -> TargetInfo {
        TargetInfo {
            kind: kind.into(),
            ..TargetInfo::default()
        }
    }

    #[test]
    fn the_device_is_the_gpu_when_one_was_used() {
        let rtx = gpu("NVIDIA", "NVIDIA GeForce RTX 4060", 8188, "CUDA");
        let igpu = gpu("AMD", "Radeon 780M", 512, "Vulkan");
        let embedded = target("embedded");
        // No GPU at all, or no record of the hardware: the CPU.
        assert_eq!(
            device_name(&env(vec![], &["CPU"]), &embedded, None),
            "AMD Ryzen 7 7840U"
        );
        let unrecorded = Environment {
            cpu_model: "Apple M2".into(),
            ..Environment::default()
        };
        assert_eq!(device_name(&unrecorded, &embedded, Some(0.0)), "Apple M2");
        // A GPU the CPU-only embedded engine cannot drive: still the CPU.
        let e = env(vec![rtx.clone(), igpu.clone()], &["CPU"]);
        assert_eq!(device_name(&e, &embedded, None), "AMD Ryzen 7 7840U");
        // ... unless VRAM use was measured: the NVIDIA board (NVML measured it).
        assert_eq!(
            device_name(&e, &embedded, Some(900.0)),
            "NVIDIA GeForce RTX 4060"
        );
        // Built with CUDA: the NVIDIA board; with Vulkan: the GPU with the most VRAM.
        let cuda = env(vec![igpu.clone(), rtx.clone()], &["CPU", "CUDA"]);
        assert_eq!(
            device_name(&cuda, &embedded, None),
            "NVIDIA GeForce RTX 4060"
        );
        let vulkan = env(vec![igpu.clone()], &["CPU", "Vulkan"]);
        assert_eq!(device_name(&vulkan, &embedded, None), "AMD Radeon 780M");
        // A server has its own build: a GPU present counts.
        let cpu_build = env(vec![igpu], &["CPU"]);
        assert_eq!(
            device_name(&cpu_build, &target("http"), None),
            "AMD Radeon 780M"
        );
        // VRAM measured but no GPU recorded.
        let mut bare = env(vec![], &["CPU"]);
        bare.hardware = None;
        assert_eq!(
            device_name(&bare, &embedded, Some(10.0)),
            "NVIDIA GPU (model not recorded)"
        );
        assert_eq!(
            gpu_lines(&cuda)[1],
            "NVIDIA GeForce RTX 4060 (8188 MB VRAM, CUDA)"
        );
        assert!((mb_to_mib(1_048_576.0) - 1e6).abs() < 1e-9);
    }

    #[test]
    fn system_info_lines_are_distinct() {
        let t = |s: Option<&str>| TargetInfo {
            system_info: s.map(str::to_string),
            ..TargetInfo::default()
        };
        let ts = [
            t(Some("CPU : AVX2 = 1 ")),
            t(None),
            t(Some("CPU : AVX2 = 1")),
            t(Some("")),
        ];
        assert_eq!(system_info(ts.iter()), ["CPU : AVX2 = 1"]);
    }
}
