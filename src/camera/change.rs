//! Change detection for continuous cameras: capture once per poster
//! presentation, never the empty wall, never the same poster twice in a row.
//!
//! Each frame's region of interest is reduced to a 32x24 grayscale
//! [`Signature`] (cell means over a sparse sample grid, so the cost hardly
//! depends on the resolution). Two signatures are compared after removing
//! their mean and dividing by their contrast, so auto-exposure and a lamp
//! switched on do not look like a new poster: the distance is the mean
//! absolute difference, 0 for the same picture and about 1 for unrelated ones.
//!
//! The scene is *still* while every frame stays within `motion_threshold`
//! of the first frame of the still period (an anchor, so a slow drift adds
//! up instead of hiding under the threshold). Once it has been still for
//! `settle`, the settled scene is judged once:
//!
//! 1. within `change_threshold` of the previous settled scene: nothing
//!    happened (someone walked past);
//! 2. less structure than `min_structure`: an empty wall, learned as a
//!    background;
//! 3. like a learned background: empty;
//! 4. like the last captured scene: the same poster again (a poster put
//!    back right after it was taken away is not classified twice; another
//!    poster in between resets that);
//! 5. like the first scene that settled after the start: the poster was
//!    taken away and the (textured) wall is back: learned as a background;
//! 6. otherwise: a new poster, captured.
//!
//! A textured wall seen first at start is taken for a poster once (rule 6):
//! nothing tells them apart until a poster has come and gone. The other
//! side of rule 5: a poster already up when the daemon started is
//! classified then, and taken for the wall if it is put up again later.

use image::RgbImage;
use std::time::{Duration, Instant};

/// Signature grid: 4:3 like most cameras.
pub const SIG_W: usize = 32;
pub const SIG_H: usize = 24;
const CELLS: usize = SIG_W * SIG_H;

/// Samples per cell side at most: about 50k pixel reads per frame whatever
/// the resolution.
const SAMPLES_PER_CELL_SIDE: u32 = 8;

/// The contrast a signature is divided by is at least this (gray levels),
/// so the noise of a blank wall is not blown up into structure.
const CONTRAST_FLOOR: f32 = 8.0;

/// Backgrounds remembered (a wall by day and by night, a door open or shut).
const MAX_BACKGROUNDS: usize = 4;

/// A region of interest in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    /// The whole of a `width` x `height` frame.
    pub fn full(width: u32, height: u32) -> Self {
        Self {
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    /// `[x, y, w, h]` fractions (validated by the config) over a frame of
    /// this size; `None` is the whole frame. Never empty, never outside.
    pub fn from_fractions(roi: Option<[f64; 4]>, width: u32, height: u32) -> Self {
        let Some([fx, fy, fw, fh]) = roi else {
            return Self::full(width, height);
        };
        let px = |f: f64, size: u32| (f.clamp(0.0, 1.0) * f64::from(size)).round() as u32;
        let x = px(fx, width).min(width.saturating_sub(1));
        let y = px(fy, height).min(height.saturating_sub(1));
        Self {
            x,
            y,
            width: px(fw, width).min(width - x).max(1),
            height: px(fh, height).min(height - y).max(1),
        }
    }
}

/// A frame reduced for comparison.
#[derive(Debug, Clone)]
pub struct Signature {
    /// Mean gray level per cell, row by row.
    cells: Vec<f32>,
    /// The cells with their mean removed, divided by their contrast.
    normalised: Vec<f32>,
    /// Mean absolute difference between neighbouring cells, in gray levels:
    /// low for a blank or evenly lit wall, high for a poster.
    pub structure: f32,
}

impl Signature {
    /// The signature of `roi` in `image` (clamped to the image).
    pub fn of(image: &RgbImage, roi: Rect) -> Self {
        let (iw, ih) = image.dimensions();
        let x0 = roi.x.min(iw.saturating_sub(1));
        let y0 = roi.y.min(ih.saturating_sub(1));
        if iw == 0 || ih == 0 {
            return Self::from_cells(vec![0.0; CELLS]);
        }
        let w = roi.width.min(iw - x0).max(1);
        let h = roi.height.min(ih - y0).max(1);
        let raw = image.as_raw();
        let stride = iw as usize * 3;
        let mut cells = vec![0.0f32; CELLS];
        for cy in 0..SIG_H as u32 {
            let top = y0 + cy * h / SIG_H as u32;
            let bottom = (y0 + (cy + 1) * h / SIG_H as u32).max(top + 1).min(ih);
            let step_y = ((bottom - top) / SAMPLES_PER_CELL_SIDE).max(1);
            for cx in 0..SIG_W as u32 {
                let left = x0 + cx * w / SIG_W as u32;
                let right = (x0 + (cx + 1) * w / SIG_W as u32).max(left + 1).min(iw);
                let step_x = ((right - left) / SAMPLES_PER_CELL_SIDE).max(1);
                let (mut sum, mut n) = (0u32, 0u32);
                let mut y = top;
                while y < bottom {
                    let row = y as usize * stride;
                    let mut x = left;
                    while x < right {
                        let p = row + x as usize * 3;
                        // Rec. 601 luma in integers.
                        sum += (77 * u32::from(raw[p])
                            + 150 * u32::from(raw[p + 1])
                            + 29 * u32::from(raw[p + 2]))
                            >> 8;
                        n += 1;
                        x += step_x;
                    }
                    y += step_y;
                }
                cells[cy as usize * SIG_W + cx as usize] = sum as f32 / n.max(1) as f32;
            }
        }
        Self::from_cells(cells)
    }

    fn from_cells(cells: Vec<f32>) -> Self {
        let n = cells.len() as f32;
        let mean = cells.iter().sum::<f32>() / n;
        let var = cells.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n;
        let contrast = var.sqrt().max(CONTRAST_FLOOR);
        let normalised = cells.iter().map(|v| (v - mean) / contrast).collect();
        let mut edges = 0.0f32;
        let mut count = 0u32;
        for y in 0..SIG_H {
            for x in 0..SIG_W {
                let v = cells[y * SIG_W + x];
                if x + 1 < SIG_W {
                    edges += (v - cells[y * SIG_W + x + 1]).abs();
                    count += 1;
                }
                if y + 1 < SIG_H {
                    edges += (v - cells[(y + 1) * SIG_W + x]).abs();
                    count += 1;
                }
            }
        }
        Self {
            cells,
            normalised,
            structure: edges / count.max(1) as f32,
        }
    }

    /// 0 for the same picture, about 1 for unrelated ones.
    pub fn distance(&self, other: &Self) -> f32 {
        let sum: f32 = self
            .normalised
            .iter()
            .zip(&other.normalised)
            .map(|(a, b)| (a - b).abs())
            .sum();
        sum / self.normalised.len().max(1) as f32
    }

    /// Mean gray level per cell (for debugging and tests).
    pub fn cells(&self) -> &[f32] {
        &self.cells
    }
}

/// The thresholds, from the camera's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorSettings {
    pub settle: Duration,
    pub motion_threshold: f32,
    pub change_threshold: f32,
    pub min_structure: f32,
}

/// What the detector concluded about a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The scene moves, or has not been still for `settle` yet.
    Waiting,
    /// Still, and already judged.
    Settled,
    /// Settled back to the scene it was before: nothing to do.
    Unchanged,
    /// Settled on an empty wall.
    Empty,
    /// Settled on the poster captured last.
    SamePoster,
    /// Settled on a new poster: capture this frame.
    Capture,
}

/// The change detector of one camera.
#[derive(Debug)]
pub struct Detector {
    settings: DetectorSettings,
    /// First frame of the current still period, and when it was taken.
    anchor: Option<(Signature, Instant)>,
    /// The current still period has been judged.
    judged: bool,
    /// The previous settled scene.
    reference: Option<Signature>,
    last_captured: Option<Signature>,
    /// The first scene that settled after the start: most likely the wall.
    first_scene: Option<Signature>,
    backgrounds: Vec<Signature>,
}

impl Detector {
    pub fn new(settings: DetectorSettings) -> Self {
        Self {
            settings,
            anchor: None,
            judged: false,
            reference: None,
            last_captured: None,
            first_scene: None,
            backgrounds: Vec::new(),
        }
    }

    /// Judge one frame's signature, taken at `at`.
    pub fn observe(&mut self, signature: Signature, at: Instant) -> Verdict {
        let still = self.anchor.as_ref().is_some_and(|(anchor, _)| {
            anchor.distance(&signature) < self.settings.motion_threshold
        });
        if !still {
            self.anchor = Some((signature, at));
            self.judged = false;
            return Verdict::Waiting;
        }
        let Some((_, since)) = &self.anchor else {
            return Verdict::Waiting;
        };
        if at.saturating_duration_since(*since) < self.settings.settle {
            return Verdict::Waiting;
        }
        if self.judged {
            return Verdict::Settled;
        }
        self.judged = true;
        self.judge(signature)
    }

    fn judge(&mut self, scene: Signature) -> Verdict {
        let change = self.settings.change_threshold;
        let like = |other: &Option<Signature>| {
            other
                .as_ref()
                .is_some_and(|other| other.distance(&scene) < change)
        };
        if like(&self.reference) {
            return Verdict::Unchanged;
        }
        self.reference = Some(scene.clone());
        let first = self.first_scene.is_none();
        if first {
            self.first_scene = Some(scene.clone());
        }
        if scene.structure < self.settings.min_structure {
            self.learn_background(scene);
            return Verdict::Empty;
        }
        if self.backgrounds.iter().any(|b| b.distance(&scene) < change) {
            return Verdict::Empty;
        }
        if like(&self.last_captured) {
            return Verdict::SamePoster;
        }
        if !first && like(&self.first_scene) {
            self.learn_background(scene);
            return Verdict::Empty;
        }
        self.last_captured = Some(scene);
        Verdict::Capture
    }

    /// An on-demand capture of this scene: the detector will not capture
    /// it again when it settles.
    pub fn captured(&mut self, scene: Signature) {
        self.last_captured = Some(scene);
    }

    /// The stream broke: motion starts over, what was learned is kept
    /// (the camera comes back looking at the same wall).
    pub fn reset_motion(&mut self) {
        self.anchor = None;
        self.judged = false;
    }

    fn learn_background(&mut self, scene: Signature) {
        if self.backgrounds.len() == MAX_BACKGROUNDS {
            self.backgrounds.remove(0);
        }
        self.backgrounds.push(scene);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::source::synthetic::{render, render_frame, Scene};

    fn settings() -> DetectorSettings {
        DetectorSettings {
            settle: Duration::from_millis(500),
            motion_threshold: 0.08,
            change_threshold: 0.25,
            min_structure: 4.0,
        }
    }

    fn sig(scene: &Scene) -> Signature {
        let image = render(scene, 320, 240);
        Signature::of(&image, Rect::full(320, 240))
    }

    #[test]
    fn an_empty_wall_has_little_structure_and_a_poster_much() {
        let wall = sig(&Scene::Wall);
        let poster = sig(&Scene::poster(7));
        assert!(wall.structure < 4.0, "wall {}", wall.structure);
        assert!(poster.structure > 8.0, "poster {}", poster.structure);
        let noisy = render_frame(&Scene::Wall, 320, 240, 99);
        let wall2 = Signature::of(&noisy, Rect::full(320, 240));
        assert!(wall.distance(&wall2) < 0.08, "{}", wall.distance(&wall2));
        let other = sig(&Scene::poster(8));
        assert!(
            poster.distance(&other) > 0.25,
            "{}",
            poster.distance(&other)
        );
    }

    #[test]
    fn brightness_alone_is_not_a_new_scene() {
        let image = render(&Scene::poster(3), 320, 240);
        let mut brighter = image.clone();
        for p in brighter.pixels_mut() {
            for c in &mut p.0 {
                *c = (f32::from(*c) * 1.2 + 10.0).min(255.0) as u8;
            }
        }
        let a = Signature::of(&image, Rect::full(320, 240));
        let b = Signature::of(&brighter, Rect::full(320, 240));
        assert!(a.distance(&b) < 0.08, "{}", a.distance(&b));
    }

    #[test]
    fn regions_of_interest_stay_inside_the_frame() {
        assert_eq!(Rect::from_fractions(None, 640, 480), Rect::full(640, 480));
        assert_eq!(
            Rect::from_fractions(Some([0.25, 0.5, 0.5, 0.5]), 640, 480),
            Rect {
                x: 160,
                y: 240,
                width: 320,
                height: 240
            }
        );
        let r = Rect::from_fractions(Some([1.0, 1.0, 1.0, 1.0]), 640, 480);
        assert!(r.x + r.width <= 640 && r.y + r.height <= 480 && r.width >= 1);
    }

    /// Feed `scene` for `ms` at 10 fps; the verdicts other than waiting.
    fn hold(d: &mut Detector, t: &mut Instant, scene: &Scene, ms: u64) -> Vec<Verdict> {
        let s = sig(scene);
        let mut out = Vec::new();
        for _ in 0..ms / 100 {
            *t += Duration::from_millis(100);
            match d.observe(s.clone(), *t) {
                Verdict::Waiting | Verdict::Settled => {}
                v => out.push(v),
            }
        }
        out
    }

    #[test]
    fn one_capture_per_presentation() {
        use Verdict::*;
        let mut d = Detector::new(settings());
        let mut t = Instant::now();
        let wall = Scene::Wall;
        assert_eq!(hold(&mut d, &mut t, &wall, 2000), [Empty]);
        assert_eq!(hold(&mut d, &mut t, &Scene::poster(1), 3000), [Capture]);
        assert_eq!(hold(&mut d, &mut t, &wall, 2000), [Empty]);
        // Put straight back: the same poster twice in a row is not captured.
        assert_eq!(hold(&mut d, &mut t, &Scene::poster(1), 2000), [SamePoster]);
        assert_eq!(hold(&mut d, &mut t, &Scene::poster(2), 2000), [Capture]);
        // Shorter than the settle time: a poster waved past is not captured.
        assert_eq!(hold(&mut d, &mut t, &Scene::poster(3), 300), []);
        assert_eq!(hold(&mut d, &mut t, &Scene::poster(2), 2000), [Unchanged]);
        assert_eq!(hold(&mut d, &mut t, &Scene::poster(1), 2000), [Capture]);
    }

    #[test]
    fn a_textured_wall_is_learned_when_the_poster_goes() {
        use Verdict::*;
        let mut d = Detector::new(settings());
        let mut t = Instant::now();
        let bricks = Scene::Bricks;
        // Seen first, it cannot be told from a poster.
        assert_eq!(hold(&mut d, &mut t, &bricks, 2000), [Capture]);
        assert_eq!(hold(&mut d, &mut t, &Scene::poster(4), 2000), [Capture]);
        assert_eq!(hold(&mut d, &mut t, &bricks, 2000), [Empty]);
        assert_eq!(hold(&mut d, &mut t, &Scene::poster(5), 2000), [Capture]);
        assert_eq!(hold(&mut d, &mut t, &bricks, 2000), [Empty]);
    }
}
