//! Drawn scenes and a scripted camera: a wall, posters that slide in, are
//! held and taken away, an unplugged cable. Tests drive it on a virtual
//! clock (as fast as the machine goes, the same verdicts every run);
//! `synthetic:demo` plays a looping script in real time to try the
//! appliance without a camera.

use super::{Frame, FrameSource, SourceError, SourceFuture};
use image::{Rgb, RgbImage};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The scripts `synthetic:<name>` accepts.
pub use crate::config::SYNTHETIC_SCRIPTS as SCRIPTS;

/// What is in front of the camera.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scene {
    /// An evenly lit, slightly vignetted plain wall.
    Wall,
    /// A brick wall: texture without a poster.
    Bricks,
    /// A poster on the plain wall, `offset` of the frame width to the right
    /// of its place (0: in place, 1: out of the picture).
    Poster { seed: u32, offset: f32 },
    /// The cable is pulled (only in scripts).
    Unplugged,
}

impl Scene {
    /// Poster `seed`, in place.
    pub fn poster(seed: u32) -> Self {
        Self::Poster { seed, offset: 0.0 }
    }
}

/// `scene` without sensor noise.
pub fn render(scene: &Scene, width: u32, height: u32) -> RgbImage {
    render_frame(scene, width, height, 0)
}

/// `scene` with the sensor noise of frame `noise_seed` (0: none).
pub fn render_frame(scene: &Scene, width: u32, height: u32, noise_seed: u32) -> RgbImage {
    let (w, h) = (width.max(1), height.max(1));
    let mut image = RgbImage::from_fn(w, h, |x, y| match scene {
        Scene::Bricks => brick(x, y, w),
        _ => wall(x, y, w, h),
    });
    if let Scene::Poster { seed, offset } = *scene {
        draw_poster(&mut image, seed, offset);
    }
    if noise_seed != 0 {
        for (x, y, p) in image.enumerate_pixels_mut() {
            let n = (hash(x, y ^ noise_seed.wrapping_mul(7919)) % 7) as i16 - 3;
            for c in &mut p.0 {
                *c = (i16::from(*c) + n).clamp(0, 255) as u8;
            }
        }
    }
    image
}

fn wall(x: u32, y: u32, w: u32, h: u32) -> Rgb<u8> {
    // Darker towards the corners, as a lamp and a lens make it.
    let dx = x as f32 / w as f32 - 0.5;
    let dy = y as f32 / h as f32 - 0.5;
    let shade = 1.0 - 0.25 * (dx * dx + dy * dy);
    Rgb([
        (205.0 * shade) as u8,
        (200.0 * shade) as u8,
        (188.0 * shade) as u8,
    ])
}

fn brick(x: u32, y: u32, w: u32) -> Rgb<u8> {
    let course = (w / 20).max(4);
    let row = y / course;
    let shift = if row.is_multiple_of(2) { 0 } else { course };
    let mortar = y % course < 2 || (x + shift) % (course * 2) < 2;
    if mortar {
        Rgb([190, 185, 175])
    } else {
        let tone = (hash(row, (x + shift) / (course * 2)) % 40) as u8;
        Rgb([140 + tone, 60 + tone / 2, 45])
    }
}

/// A poster's art: a plain field, a big disc, two blocks and title bars,
/// each placed and coloured by `seed`, so different seeds look different.
fn draw_poster(image: &mut RgbImage, seed: u32, offset: f32) {
    let (w, h) = image.dimensions();
    let pw = w / 2;
    let ph = h * 3 / 4;
    let left = (w / 4) as i64 + (offset * w as f32) as i64;
    let top = i64::from(h / 8);
    let mut rng = hash(seed, 0x9E37);
    let mut next = |n: u32| {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        rng % n.max(1)
    };
    let colour = |r: u32, g: u32, b: u32| Rgb([r as u8, g as u8, b as u8]);
    let field = colour(next(120), next(120), next(120));
    let disc_colour = colour(120 + next(135), 120 + next(135), next(255));
    let (dcx, dcy, dr) = (next(pw), ph / 4 + next(ph / 2), pw / 5 + next(pw / 4));
    let blocks: Vec<(u32, u32, u32, u32, Rgb<u8>)> = (0..2)
        .map(|_| {
            let (bw, bh) = (pw / 6 + next(pw / 3), ph / 10 + next(ph / 4));
            (
                next(pw - bw),
                next(ph - bh),
                bw,
                bh,
                colour(next(256), next(256), next(256)),
            )
        })
        .collect();
    let title_at_top = next(2) == 0;
    for py in 0..ph {
        for px in 0..pw {
            let x = left + i64::from(px);
            let y = top + i64::from(py);
            if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
                continue;
            }
            let in_disc = (i64::from(px) - i64::from(dcx)).pow(2)
                + (i64::from(py) - i64::from(dcy)).pow(2)
                < i64::from(dr).pow(2);
            let block = blocks
                .iter()
                .find(|(bx, by, bw, bh, _)| px >= *bx && px < bx + bw && py >= *by && py < by + bh);
            let title_band = if title_at_top {
                py > ph / 16 && py < ph / 6
            } else {
                py > ph * 5 / 6 && py < ph * 15 / 16
            };
            let pixel =
                if title_band && px > pw / 8 && px < pw * 7 / 8 && (px / 6).is_multiple_of(2) {
                    Rgb([245, 240, 230])
                } else if let Some((_, _, _, _, c)) = block {
                    *c
                } else if in_disc {
                    disc_colour
                } else {
                    field
                };
            image.put_pixel(x as u32, y as u32, pixel);
        }
    }
}

fn hash(a: u32, b: u32) -> u32 {
    let mut h = a.wrapping_mul(0x9E37_79B1) ^ b.wrapping_mul(0x85EB_CA77);
    h ^= h >> 15;
    h = h.wrapping_mul(0xC2B2_AE3D);
    h ^= h >> 13;
    h | 1
}

/// One step of a script: `scene` for `hold`; a poster with `slide_from`
/// moves from that offset to its own over the step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shot {
    pub scene: Scene,
    pub hold: Duration,
    pub slide_from: Option<f32>,
}

impl Shot {
    pub fn hold(scene: Scene, hold: Duration) -> Self {
        Self {
            scene,
            hold,
            slide_from: None,
        }
    }

    /// Poster `seed` slides in from the right and stops in place.
    pub fn slide_in(seed: u32, over: Duration) -> Self {
        Self {
            scene: Scene::poster(seed),
            hold: over,
            slide_from: Some(1.0),
        }
    }

    /// Poster `seed` slides out to the right.
    pub fn slide_out(seed: u32, over: Duration) -> Self {
        Self {
            scene: Scene::Poster { seed, offset: 1.0 },
            hold: over,
            slide_from: Some(0.0),
        }
    }

    /// The cable is out for `hold`: the camera fails to open about every
    /// half second of it (at least once).
    pub fn unplugged(hold: Duration) -> Self {
        Self::hold(Scene::Unplugged, hold)
    }
}

/// The looping demo: empty wall, a poster slides in, is held, slides out;
/// the next poster.
pub fn demo_script() -> Vec<Shot> {
    let s = Duration::from_secs;
    (1..=5)
        .flat_map(|seed| {
            [
                Shot::hold(Scene::Wall, s(4)),
                Shot::slide_in(seed, s(1)),
                Shot::hold(Scene::poster(seed), s(6)),
                Shot::slide_out(seed, s(1)),
            ]
        })
        .collect()
}

/// A camera that films a script.
pub struct SyntheticSource {
    shots: Vec<Shot>,
    looped: bool,
    paced: bool,
    interval: Duration,
    width: u32,
    height: u32,
    shot: usize,
    frame_in_shot: u64,
    frame_no: u32,
    clock: Instant,
    open: bool,
    failed_opens_left: u32,
    finished: watch::Sender<bool>,
}

impl SyntheticSource {
    /// Plays `shots` once on a virtual clock, as fast as it is read; then
    /// waits forever ([`finished`](Self::finished) says when).
    pub fn scripted(shots: Vec<Shot>, fps: u32, width: u32, height: u32) -> Self {
        Self {
            shots,
            looped: false,
            paced: false,
            interval: Duration::from_secs(1) / fps.max(1),
            width,
            height,
            shot: 0,
            frame_in_shot: 0,
            frame_no: 0,
            clock: Instant::now(),
            open: false,
            failed_opens_left: 0,
            finished: watch::Sender::new(false),
        }
    }

    /// Plays `shots` in a loop, in real time.
    pub fn live(shots: Vec<Shot>, fps: u32, width: u32, height: u32) -> Self {
        Self {
            looped: true,
            paced: true,
            ..Self::scripted(shots, fps, width, height)
        }
    }

    /// Turns true once a non-looping script has played to its end.
    pub fn finished(&self) -> watch::Receiver<bool> {
        self.finished.subscribe()
    }

    async fn frame(&mut self) -> Result<Frame, SourceError> {
        if !self.open {
            return Err(SourceError::Gone("the synthetic camera is not open".into()));
        }
        loop {
            if self.shot >= self.shots.len() {
                if self.looped && !self.shots.is_empty() {
                    self.shot = 0;
                } else {
                    self.finished.send_replace(true);
                    std::future::pending::<()>().await;
                }
            }
            let shot = self.shots[self.shot];
            let frames = (shot.hold.as_secs_f64() / self.interval.as_secs_f64())
                .round()
                .max(1.0) as u64;
            if shot.scene == Scene::Unplugged {
                self.shot += 1;
                self.open = false;
                self.failed_opens_left = (shot.hold.as_millis() / 500).max(1) as u32;
                return Err(SourceError::Gone(
                    "the synthetic camera was unplugged".into(),
                ));
            }
            if self.frame_in_shot >= frames {
                self.shot += 1;
                self.frame_in_shot = 0;
                continue;
            }
            let scene = match (shot.scene, shot.slide_from) {
                (Scene::Poster { seed, offset }, Some(from)) => {
                    let progress = (self.frame_in_shot + 1) as f32 / frames as f32;
                    Scene::Poster {
                        seed,
                        offset: from + (offset - from) * progress,
                    }
                }
                (scene, _) => scene,
            };
            self.frame_in_shot += 1;
            self.frame_no = self.frame_no.wrapping_add(1).max(1);
            let at = if self.paced {
                tokio::time::sleep(self.interval).await;
                Instant::now()
            } else {
                // Let the runtime breathe between frames of a fast script.
                tokio::task::yield_now().await;
                self.clock += self.interval;
                self.clock
            };
            let image = render_frame(&scene, self.width, self.height, self.frame_no);
            return Ok(Frame::rgb(at, image));
        }
    }
}

impl FrameSource for SyntheticSource {
    fn open(&mut self) -> SourceFuture<'_, Result<(), SourceError>> {
        Box::pin(async move {
            if self.failed_opens_left > 0 {
                self.failed_opens_left -= 1;
                return Err(SourceError::Gone(
                    "the synthetic camera is unplugged".into(),
                ));
            }
            self.open = true;
            Ok(())
        })
    }

    fn next_frame(&mut self) -> SourceFuture<'_, Result<Frame, SourceError>> {
        Box::pin(self.frame())
    }

    fn close(&mut self) {
        self.open = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posters_differ_and_slide() {
        let a = render(&Scene::poster(1), 160, 120);
        let b = render(&Scene::poster(2), 160, 120);
        assert_ne!(a, b);
        let out = render(
            &Scene::Poster {
                seed: 1,
                offset: 1.0,
            },
            160,
            120,
        );
        assert_eq!(out, render(&Scene::Wall, 160, 120));
    }

    #[tokio::test]
    async fn a_script_unplugs_and_ends() {
        let ms = Duration::from_millis;
        let mut cam = SyntheticSource::scripted(
            vec![
                Shot::hold(Scene::Wall, ms(200)),
                Shot::unplugged(ms(1000)),
                Shot::hold(Scene::poster(1), ms(100)),
            ],
            10,
            64,
            48,
        );
        cam.open().await.unwrap();
        assert!(cam.next_frame().await.is_ok());
        assert!(cam.next_frame().await.is_ok());
        assert!(matches!(cam.next_frame().await, Err(SourceError::Gone(_))));
        assert!(cam.open().await.is_err());
        assert!(cam.open().await.is_err());
        cam.open().await.unwrap();
        assert!(cam.next_frame().await.is_ok());
        let mut finished = cam.finished();
        assert!(!*finished.borrow());
        tokio::select! {
            _ = cam.next_frame() => panic!("the script has ended"),
            _ = finished.wait_for(|f| *f) => {}
        }
    }
}
