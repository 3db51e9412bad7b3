//! `marquee bench-camera`: what change detection costs per frame, as a
//! share of one core at the camera's frame rate, and what decoding a JPEG
//! frame costs (the price of an MJPEG or HTTP camera in continuous mode).
//!
//! A benchmark, not a test: it prints figures and asserts nothing. The
//! frames are drawn scenes with sensor noise (a poster sliding in, held).

use crate::camera::change::{Detector, DetectorSettings, Rect, Signature};
use crate::camera::source::decode_jpeg;
use crate::camera::source::synthetic::{render_frame, Scene};
use crate::config::CameraDefaults;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// The frame rate the share of a core is computed for.
    #[arg(long, default_value_t = 15)]
    pub fps: u32,
    /// Frames to time.
    #[arg(long, default_value_t = 3000)]
    pub frames: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn report(what: &str, mut times: Vec<Duration>, fps: u32) {
    times.sort();
    let mean = times.iter().sum::<Duration>() / u32::try_from(times.len().max(1)).unwrap_or(1);
    let share = mean.as_secs_f64() * f64::from(fps) * 100.0;
    println!(
        "{what:<34} p50 {:>8.1} us  p99 {:>8.1} us  mean {:>8.1} us  = {share:.2}% of one core at {fps} fps",
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6,
    );
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (w, h) = (args.width.max(16), args.height.max(16));
    // A cycle of 64 distinct frames: wall, a poster sliding in, held.
    let frames: Vec<_> = (0..64u32)
        .map(|i| {
            let scene = match i {
                0..=15 => Scene::Wall,
                16..=31 => Scene::Poster {
                    seed: 1,
                    offset: 1.0 - (i - 15) as f32 / 16.0,
                },
                _ => Scene::poster(1),
            };
            render_frame(&scene, w, h, i + 1)
        })
        .collect();
    let jpegs: Vec<_> = frames
        .iter()
        .take(8)
        .map(|f| crate::drawing::encode(f, image::ImageFormat::Jpeg))
        .collect();
    let defaults = CameraDefaults::default();
    let mut detector = Detector::new(DetectorSettings {
        settle: Duration::from_millis(defaults.settle_ms),
        motion_threshold: defaults.motion_threshold,
        change_threshold: defaults.change_threshold,
        min_structure: defaults.min_structure,
    });
    let roi = Rect::full(w, h);
    let interval = Duration::from_secs(1) / args.fps.max(1);
    let mut clock = Instant::now();
    let mut detect = Vec::with_capacity(args.frames);
    for i in 0..args.frames {
        let frame = &frames[i % frames.len()];
        clock += interval;
        let t = Instant::now();
        let verdict = detector.observe(Signature::of(frame, roi), clock);
        detect.push(t.elapsed());
        std::hint::black_box(verdict);
    }
    let decode_n = (args.frames / 10).max(20);
    let mut decode = Vec::with_capacity(decode_n);
    for i in 0..decode_n {
        let t = Instant::now();
        let image = decode_jpeg(&jpegs[i % jpegs.len()])?;
        decode.push(t.elapsed());
        std::hint::black_box(image);
    }
    println!(
        "camera frames {w}x{h}, {} frames timed, {} cores on this machine",
        args.frames,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    report("change detection (signature+judge)", detect, args.fps);
    report("JPEG decode (MJPEG/HTTP cameras)", decode, args.fps);
    Ok(ExitCode::SUCCESS)
}
