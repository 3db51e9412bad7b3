//! Sample posters the dashboard offers on the Tag page, drawn by the
//! program itself (no artwork is shipped): a dark night scene, a bright
//! sunny one, a starfield with a planet, and a pink one with a heart.

use image::{Rgb, RgbImage};

/// One drawn sample, encoded once at start.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: &'static str,
    pub jpeg: Vec<u8>,
}

/// Colours one pixel of a sample from its coordinates.
type Painter = fn(u32, u32) -> Rgb<u8>;

const WIDTH: u32 = 224;
const HEIGHT: u32 = 320;

/// Every sample, in the order the Tag page shows them.
pub fn all() -> Vec<Sample> {
    let draw: [(&'static str, Painter); 4] = [
        ("Night", night),
        ("Sunny", sunny),
        ("Stars", stars),
        ("Heart", heart),
    ];
    draw.into_iter()
        .map(|(name, f)| Sample {
            name,
            jpeg: crate::drawing::encode(
                &RgbImage::from_fn(WIDTH, HEIGHT, f),
                image::ImageFormat::Jpeg,
            ),
        })
        .collect()
}

fn title_bar(x: u32, y: u32) -> bool {
    y > HEIGHT * 5 / 6 && y < HEIGHT * 5 / 6 + 18 && x > 24 && x < WIDTH - 24 && (x / 11) % 3 != 2
}

fn night(x: u32, y: u32) -> Rgb<u8> {
    if title_bar(x, y) {
        return Rgb([200, 20, 20]);
    }
    let (dx, dy) = (x as i64 - 150, y as i64 - 70);
    if dx * dx + dy * dy < 26 * 26 {
        return Rgb([230, 230, 210]);
    }
    // A silhouette: a figure against the moonlit fog.
    let (fx, fy) = (x as i64 - 100, y as i64 - 200);
    if (fx * fx) / 4 + fy * fy / 9 < 30 * 30 || (fx * fx + (fy + 70) * (fy + 70) < 18 * 18) {
        return Rgb([8, 8, 12]);
    }
    let fog = (y * 60 / HEIGHT) as u8;
    Rgb([10 + fog / 3, 12 + fog / 2, 30 + fog])
}

fn sunny(x: u32, y: u32) -> Rgb<u8> {
    if title_bar(x, y) {
        return Rgb([30, 90, 200]);
    }
    let (dx, dy) = (x as i64 - 112, y as i64 - 110);
    let d2 = dx * dx + dy * dy;
    if d2 < 50 * 50 {
        return Rgb([255, 215, 40]);
    }
    // Rays.
    if d2 < 95 * 95 && ((dx.abs() < 6) || (dy.abs() < 6) || ((dx - dy).abs() < 8)) {
        return Rgb([255, 190, 30]);
    }
    if y > HEIGHT * 2 / 3 {
        return Rgb([90, 190, 80]);
    }
    Rgb([120, 200, 250])
}

fn stars(x: u32, y: u32) -> Rgb<u8> {
    if title_bar(x, y) {
        return Rgb([180, 220, 255]);
    }
    let (dx, dy) = (x as i64 - 130, y as i64 - 150);
    let d2 = dx * dx + dy * dy;
    if d2 < 60 * 60 {
        let shade = 120 + (dx + 60).clamp(0, 120) as u8;
        return Rgb([shade / 3, shade / 2, shade]);
    }
    // A ring around the planet.
    let ring = (dx * dx) / 9 + dy * dy * 4;
    if (95 * 95 / 9 * 9..110 * 110).contains(&ring) && dy.abs() < 20 {
        return Rgb([200, 180, 140]);
    }
    let h = x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663);
    if h.is_multiple_of(97) {
        return Rgb([255, 255, 255]);
    }
    Rgb([4, 4, 16])
}

fn heart(x: u32, y: u32) -> Rgb<u8> {
    if title_bar(x, y) {
        return Rgb([140, 20, 60]);
    }
    // The implicit heart curve (x^2 + y^2 - 1)^3 - x^2 y^3 < 0.
    let u = (x as f64 - 112.0) / 70.0;
    let v = -(y as f64 - 140.0) / 70.0;
    let f = (u * u + v * v - 1.0).powi(3) - u * u * v.powi(3);
    if f < 0.0 {
        return Rgb([220, 30, 70]);
    }
    let g = (y * 40 / HEIGHT) as u8;
    Rgb([250 - g, 200 - g, 215 - g])
}

#[cfg(test)]
mod tests {
    #[test]
    fn samples_are_distinct_decodable_jpegs() {
        let samples = super::all();
        assert_eq!(samples.len(), 4);
        for s in &samples {
            let image = image::load_from_memory(&s.jpeg).unwrap();
            assert_eq!((image.width(), image.height()), (224, 320), "{}", s.name);
        }
        assert_ne!(samples[0].jpeg, samples[1].jpeg);
    }
}
