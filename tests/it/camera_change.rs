//! Change detection through the real camera runner, on the synthetic camera:
//! a scripted wall with posters sliding in, held, taken away, put back, and
//! the cable pulled. The script runs on a virtual clock, so the verdicts do
//! not depend on how fast this machine is.

use marquee::camera::change::{Rect, Signature};
use marquee::camera::source::synthetic::{render, Scene, Shot, SyntheticSource};
use marquee::camera::{CameraSetup, Cameras, CaptureError, RunnerOptions};
use marquee::config::{CameraConfig, CameraDefaults, CameraMode, CameraSettings};
use marquee::poster::Poster;
use marquee::queue::PosterQueue;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(120);
const W: u32 = 320;
const H: u32 = 240;

fn settings(mode: CameraMode) -> CameraSettings {
    CameraConfig {
        name: "wall".into(),
        source: "synthetic:demo".into(),
        mode: Some(mode),
        fps: Some(10),
        width: Some(W),
        height: Some(H),
        settle_ms: Some(500),
        ..CameraConfig::default()
    }
    .resolve(&CameraDefaults::default())
}

fn fast_backoff() -> RunnerOptions {
    RunnerOptions {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        capture_timeout: Duration::from_secs(30),
    }
}

/// The camera runner on `source`, with a fast reconnect backoff.
fn start(
    mode: CameraMode,
    source: SyntheticSource,
    posters: &PosterQueue,
    stop: &CancellationToken,
) -> Cameras {
    Cameras::start(
        vec![CameraSetup::with_source(settings(mode), Box::new(source))],
        posters,
        stop,
        fast_backoff(),
    )
    .unwrap()
}

/// Which of `seeds` the captured JPEG shows (the nearest signature).
fn which_poster(poster: &Poster, seeds: &[u32]) -> u32 {
    let image = image::load_from_memory(&poster.bytes).unwrap().into_rgb8();
    let got = Signature::of(&image, Rect::full(image.width(), image.height()));
    let distance = |seed: u32| {
        let reference = render(&Scene::poster(seed), image.width(), image.height());
        got.distance(&Signature::of(
            &reference,
            Rect::full(image.width(), image.height()),
        ))
    };
    *seeds
        .iter()
        .min_by(|a, b| distance(**a).total_cmp(&distance(**b)))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_capture_per_presentation_none_for_the_wall_and_back_after_unplug() {
    let s = Duration::from_secs;
    let script = vec![
        // The empty wall: nothing.
        Shot::hold(Scene::Wall, s(3)),
        // A poster slides in and is held: one capture, however long it stays.
        Shot::slide_in(1, s(1)),
        Shot::hold(Scene::poster(1), s(8)),
        // Taken away: nothing.
        Shot::slide_out(1, s(1)),
        Shot::hold(Scene::Wall, s(2)),
        // Another poster: one.
        Shot::slide_in(2, s(1)),
        Shot::hold(Scene::poster(2), s(3)),
        // Taken away and put straight back: not classified twice in a row.
        Shot::slide_out(2, s(1)),
        Shot::hold(Scene::Wall, s(2)),
        Shot::slide_in(2, s(1)),
        Shot::hold(Scene::poster(2), s(3)),
        // The cable is pulled, then plugged back with the same poster up.
        Shot::unplugged(s(2)),
        Shot::hold(Scene::poster(2), s(3)),
        // Captures resume: a new poster is classified.
        Shot::slide_out(2, s(1)),
        Shot::hold(Scene::Wall, s(2)),
        Shot::slide_in(3, s(1)),
        Shot::hold(Scene::poster(3), s(3)),
    ];
    let source = SyntheticSource::scripted(script, 10, W, H);
    let mut finished = source.finished();
    let (posters, mut queue) = PosterQueue::bounded(16, 64 << 20);
    let stop = CancellationToken::new();
    let cameras = start(CameraMode::Continuous, source, &posters, &stop);
    let registry = cameras.registry();
    drop(posters);

    tokio::time::timeout(WAIT, finished.wait_for(|done| *done))
        .await
        .expect("the script played to its end")
        .unwrap();
    let status = registry.snapshot().remove(0);
    assert!(status.online, "{status:?}");
    assert_eq!(status.reconnects, 1, "{status:?}");
    assert_eq!(status.captures, 3, "{status:?}");

    stop.cancel();
    cameras.wait().await;
    let mut captured = Vec::new();
    while let Some(poster) = queue.recv().await {
        assert_eq!(poster.source, "camera:wall");
        assert!(poster.reply.is_none());
        captured.push(which_poster(&poster, &[1, 2, 3]));
    }
    assert_eq!(captured, [1, 2, 3]);
    let status = registry.snapshot().remove(0);
    assert!(!status.online, "offline once stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_captures_the_next_frame_and_names_unknown_cameras() {
    let ms = Duration::from_millis;
    // Real time, looping: a camera pointed at poster 5.
    let source = SyntheticSource::live(vec![Shot::hold(Scene::poster(5), ms(500))], 20, W, H);
    let (posters, mut queue) = PosterQueue::bounded(4, 64 << 20);
    let stop = CancellationToken::new();
    let cameras = start(CameraMode::OnDemand, source, &posters, &stop);
    let registry = cameras.registry();
    let mut online = registry.watch_online().remove(0).1;
    tokio::time::timeout(WAIT, online.wait_for(|up| *up))
        .await
        .unwrap()
        .unwrap();

    let _result = registry.queue_capture(Some("wall")).await.unwrap();
    let poster = queue.recv().await.unwrap();
    assert_eq!(poster.source, "camera:wall");
    assert!(poster.reply.is_some(), "the caller waits for the result");
    assert_eq!(which_poster(&poster, &[4, 5, 6]), 5);
    let _result = registry.queue_capture(None).await.unwrap();
    assert!(queue.recv().await.is_some());

    match registry.queue_capture(Some("nope")).await {
        Err(err @ CaptureError::Unknown { .. }) => {
            assert!(err.to_string().contains("wall"), "{err}")
        }
        other => panic!("expected an unknown camera, got {other:?}"),
    }
    let status = registry.snapshot().remove(0);
    assert_eq!(status.captures, 2);
    stop.cancel();
    cameras.wait().await;
}
