//! `marquee bench`: per-stage latency and throughput of each model variant.
//!
//! A benchmark, not a test: it prints figures and asserts nothing.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::ModelArgs;
use crate::model::backbone::{BackboneError, RuntimeChoice, RuntimeKind, RuntimeOptions};
use crate::model::{manifest::Manifest, Classifier, ModelError, StageTimes};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Threads for the multi-threaded throughput run (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Posters to time (read from --images; drawn images when it is absent).
    #[arg(long, default_value_t = 200)]
    pub posters: usize,
    #[arg(long, value_name = "DIR", default_value = "../shared/data/posters")]
    pub images: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct StageStats {
    p50_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
}

#[derive(Debug, Serialize)]
struct VariantReport {
    variant: String,
    runtime: RuntimeKind,
    /// The runtime as loaded (library version, providers).
    runtime_about: String,
    decode: StageStats,
    resize: StageStats,
    backbone: StageStats,
    head: StageStats,
    total: StageStats,
    backbone_p50_ms: f64,
    posters_per_s_1_thread: f64,
    posters_per_s_n_threads: f64,
    peak_rss_mb_after: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    cores: usize,
    source: String,
    posters: usize,
    threads: usize,
    /// `int8` (tract), `int8-full@onnxruntime`, ...
    variants: BTreeMap<String, VariantReport>,
    int8_backbone_speedup: Option<f64>,
    /// Runtimes that could not be timed, and why.
    skipped: BTreeMap<String, String>,
    /// The same file on both runtimes, and each run against tract f32.
    agreement: Vec<super::bench_agreement::Agreement>,
    recommendation: Option<Recommendation>,
}

#[derive(Debug, Serialize)]
struct Recommendation {
    backend: RuntimeKind,
    variant: String,
    why: String,
}

/// A variant's features may stand in for f32's when they agree this well
/// (mean cosine over the manifest's held-out posters).
const MIN_COSINE_VS_F32: f64 = 0.99;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = args.model.dir();
    let manifest = Manifest::load(&dir)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (inputs, source) = inputs(&args)?;
    let variants: Vec<String> = match &args.model.variant {
        Some(v) => vec![v.clone()],
        None => manifest.variants.keys().cloned().collect(),
    };
    let runtimes: Vec<RuntimeChoice> = match args.model.backend {
        Some(b) => vec![b],
        None => vec![RuntimeChoice::Tract, RuntimeChoice::Onnxruntime],
    };
    let mut report = Report {
        machine: cpu_model(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        source,
        posters: inputs.len(),
        threads,
        variants: BTreeMap::new(),
        int8_backbone_speedup: None,
        skipped: BTreeMap::new(),
        agreement: Vec::new(),
        recommendation: None,
    };
    let mut loaded: Vec<(String, Classifier)> = Vec::new();
    for choice in &runtimes {
        let options = RuntimeOptions {
            choice: *choice,
            ..args.model.runtime(threads)
        };
        // `auto` tries onnxruntime first: time the files it can run.
        let runtime = match choice {
            RuntimeChoice::Tract => RuntimeKind::Tract,
            _ => RuntimeKind::Onnxruntime,
        };
        for variant in &variants {
            if !manifest.runs_on(variant, runtime.as_str()) {
                continue;
            }
            let classifier = match Classifier::load_with(&dir, Some(variant), &options) {
                Ok(c) => c,
                Err(ModelError::Backbone(BackboneError::Onnxruntime(why))) => {
                    eprintln!("onnxruntime: not timed: {why}");
                    report.skipped.insert("onnxruntime".into(), why);
                    break;
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("loading variant {variant}")))
                }
            };
            let key = match classifier.runtime() {
                RuntimeKind::Tract => variant.clone(),
                other => format!("{variant}@{}", other.as_str()),
            };
            eprintln!(
                "timing {key} on {} posters ({})...",
                inputs.len(),
                classifier.runtime_about()
            );
            report
                .variants
                .insert(key.clone(), time_variant(&classifier, &inputs, threads)?);
            loaded.push((key, classifier));
        }
    }
    if let (Some(f), Some(q)) = (report.variants.get("f32"), report.variants.get("int8")) {
        report.int8_backbone_speedup = Some(f.backbone.p50_ms / q.backbone.p50_ms);
    }
    report.agreement = super::bench_agreement::compare(&loaded, &inputs)?;
    report.recommendation = recommend(&report, &manifest);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The fastest backbone among the variants whose features agree with f32
/// (the manifest's held-out figures): what this board should run.
fn recommend(report: &Report, manifest: &Manifest) -> Option<Recommendation> {
    let close_to_f32 = |variant: &str| {
        variant == "f32"
            || manifest
                .variants
                .get(variant)
                .and_then(|v| v.extra.get("vs_f32"))
                .and_then(|v| v.get("cosine_mean"))
                .and_then(serde_json::Value::as_f64)
                .is_some_and(|c| c >= MIN_COSINE_VS_F32)
    };
    let best = report
        .variants
        .iter()
        .filter(|(_, v)| close_to_f32(&v.variant))
        .min_by(|a, b| a.1.total.p50_ms.total_cmp(&b.1.total.p50_ms))?;
    let tract_best = report
        .variants
        .values()
        .filter(|v| v.runtime == RuntimeKind::Tract && close_to_f32(&v.variant))
        .min_by(|a, b| a.total.p50_ms.total_cmp(&b.total.p50_ms));
    let (key, v) = best;
    let why = match tract_best {
        Some(t) if t.variant != v.variant || t.runtime != v.runtime => format!(
            "{key}: poster p50 {:.1} ms (backbone {:.1} ms) vs tract's best {} {:.1} ms \
             (backbone {:.1} ms), {:.1}x faster per poster",
            v.total.p50_ms,
            v.backbone_p50_ms,
            t.variant,
            t.total.p50_ms,
            t.backbone_p50_ms,
            t.total.p50_ms / v.total.p50_ms
        ),
        _ => format!(
            "{key}: the fastest here, poster p50 {:.1} ms (backbone {:.1} ms){}",
            v.total.p50_ms,
            v.backbone_p50_ms,
            report
                .skipped
                .get("onnxruntime")
                .map(|why| format!("; onnxruntime not timed: {why}"))
                .unwrap_or_default()
        ),
    };
    Some(Recommendation {
        backend: v.runtime,
        variant: v.variant.clone(),
        why,
    })
}

fn time_variant(
    c: &Classifier,
    inputs: &[Vec<u8>],
    threads: usize,
) -> anyhow::Result<VariantReport> {
    for bytes in inputs.iter().take(3) {
        c.classify(bytes)?;
    }
    let mut times: Vec<StageTimes> = Vec::with_capacity(inputs.len());
    let start = Instant::now();
    for bytes in inputs {
        times.push(c.classify_timed(bytes)?.1);
    }
    let single = start.elapsed();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(bytes) = inputs.get(i) else { break };
                let _ = c.classify(bytes);
            });
        }
    });
    let multi = start.elapsed();
    let stat = |f: fn(&StageTimes) -> Duration| stats(times.iter().map(f).collect());
    let backbone = stat(|t| t.backbone);
    Ok(VariantReport {
        variant: c.variant().to_string(),
        runtime: c.runtime(),
        runtime_about: c.runtime_about(),
        decode: stat(|t| t.decode),
        resize: stat(|t| t.resize),
        backbone_p50_ms: backbone.p50_ms,
        backbone,
        head: stat(|t| t.head),
        total: stat(|t| t.decode + t.resize + t.backbone + t.head),
        posters_per_s_1_thread: inputs.len() as f64 / single.as_secs_f64(),
        posters_per_s_n_threads: inputs.len() as f64 / multi.as_secs_f64(),
        peak_rss_mb_after: peak_rss_mb(),
    })
}

fn stats(mut d: Vec<Duration>) -> StageStats {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    let at = |q: f64| {
        let i = ((d.len() as f64 - 1.0) * q).round() as usize;
        d.get(i).copied().map_or(0.0, ms)
    };
    let mean = if d.is_empty() {
        0.0
    } else {
        d.iter().map(|&x| ms(x)).sum::<f64>() / d.len() as f64
    };
    StageStats {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        mean_ms: mean,
    }
}

fn inputs(args: &Args) -> anyhow::Result<(Vec<Vec<u8>>, String)> {
    if args.images.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&args.images)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "jpg" || e == "jpeg" || e == "png")
            })
            .collect();
        files.sort();
        files.truncate(args.posters);
        let bytes = files
            .iter()
            .map(std::fs::read)
            .collect::<Result<Vec<_>, _>>()?;
        if !bytes.is_empty() {
            return Ok((bytes, format!("posters from {}", args.images.display())));
        }
    }
    eprintln!(
        "{} has no posters: timing drawn 224x320 images instead (the labelled posters live in ../shared/data)",
        args.images.display()
    );
    let drawn = (0..args.posters)
        .map(|i| crate::drawing::drawn_poster_jpeg(i as u32, 224, 320))
        .collect();
    Ok((drawn, "drawn images".into()))
}

fn print_table(r: &Report) {
    println!(
        "machine: {} ({} cores); {} ({}); N = {} threads",
        r.machine, r.cores, r.source, r.posters, r.threads
    );
    println!(
        "{:<22} {:>14} {:>14} {:>16} {:>12} {:>14} {:>9} {:>9} {:>9}",
        "model",
        "decode p50/99",
        "resize p50/99",
        "backbone p50/99",
        "head p50",
        "total p50/99",
        "1 thr/s",
        "N thr/s",
        "peak MB"
    );
    for (name, v) in &r.variants {
        println!(
            "{:<22} {:>6.2}/{:<7.2} {:>6.2}/{:<7.2} {:>7.2}/{:<8.2} {:>12.3} {:>6.1}/{:<7.1} {:>9.1} {:>9.1} {:>9.1}",
            name,
            v.decode.p50_ms,
            v.decode.p99_ms,
            v.resize.p50_ms,
            v.resize.p99_ms,
            v.backbone.p50_ms,
            v.backbone.p99_ms,
            v.head.p50_ms,
            v.total.p50_ms,
            v.total.p99_ms,
            v.posters_per_s_1_thread,
            v.posters_per_s_n_threads,
            v.peak_rss_mb_after
        );
    }
    if let Some(s) = r.int8_backbone_speedup {
        println!("int8 backbone speed-up over f32 (p50, tract): {s:.2}x");
    }
    for (runtime, why) in &r.skipped {
        println!("{runtime}: not timed: {why}");
    }
    super::bench_agreement::print(&r.agreement);
    if let Some(rec) = &r.recommendation {
        println!(
            "this board should run: backend = \"{}\", variant = \"{}\" ({})",
            rec.backend.as_str(),
            rec.variant,
            rec.why
        );
    }
}

/// Peak resident memory of this process so far (VmHWM), in MB.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}
