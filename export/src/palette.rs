//! The runtime colours: one hue family per runtime, with a small, stable variation per frame
//! name so that neighbouring frames of one runtime can still be told apart.

use seam_proto::Runtime;

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl std::fmt::Display for Rgb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rgb({},{},{})", self.0, self.1, self.2)
    }
}

/// A hue family in HSL: frames of the runtime get the hue +- `hue_jitter` degrees and a
/// lightness between `light.0` and `light.1`, both picked from a hash of the frame's name.
struct Family {
    hue: f64,
    hue_jitter: f64,
    saturation: f64,
    light: (f64, f64),
}

const fn family(runtime: Runtime) -> Family {
    // Lightness stays above ~0.5 so that the black frame labels stay readable.
    match runtime {
        Runtime::Python => Family {
            hue: 218.0,
            hue_jitter: 6.0,
            saturation: 0.62,
            light: (0.62, 0.76),
        },
        Runtime::C => Family {
            hue: 36.0,
            hue_jitter: 5.0,
            saturation: 0.32,
            light: (0.64, 0.78),
        },
        Runtime::Go => Family {
            hue: 186.0,
            hue_jitter: 6.0,
            saturation: 0.68,
            light: (0.48, 0.64),
        },
        Runtime::Rust => Family {
            hue: 28.0,
            hue_jitter: 6.0,
            saturation: 0.90,
            light: (0.52, 0.66),
        },
        Runtime::Kernel => Family {
            hue: 356.0,
            hue_jitter: 4.0,
            saturation: 0.62,
            light: (0.58, 0.70),
        },
        Runtime::Glue => Family {
            hue: 306.0,
            hue_jitter: 4.0,
            saturation: 0.82,
            light: (0.58, 0.68),
        },
        Runtime::Unknown => Family {
            hue: 0.0,
            hue_jitter: 0.0,
            saturation: 0.0,
            light: (0.48, 0.54),
        },
    }
}

/// The colour that stands for a runtime in legends: the middle of its family.
pub fn runtime_color(runtime: Runtime) -> Rgb {
    let f = family(runtime);
    hsl(f.hue, f.saturation, (f.light.0 + f.light.1) / 2.0)
}

/// The colour of one frame: its runtime's family, varied by a hash of `name` (the same name
/// always gets the same colour).
pub fn frame_color(runtime: Runtime, name: &str) -> Rgb {
    let f = family(runtime);
    let h = fnv1a(name.as_bytes());
    let unit = |bits: u64| (bits & 0xffff) as f64 / 65535.0;
    let hue = f.hue + f.hue_jitter * (2.0 * unit(h) - 1.0);
    let light = f.light.0 + (f.light.1 - f.light.0) * unit(h >> 16);
    hsl(hue, f.saturation, light)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hsl(hue: f64, saturation: f64, light: f64) -> Rgb {
    let c = (1.0 - (2.0 * light - 1.0).abs()) * saturation;
    let h = hue.rem_euclid(360.0) / 60.0;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = light - c / 2.0;
    let byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    Rgb(byte(r), byte(g), byte(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsl_converts_known_colours() {
        let cases = [
            ((0.0, 1.0, 0.5), Rgb(255, 0, 0)),
            ((120.0, 1.0, 0.5), Rgb(0, 255, 0)),
            ((240.0, 1.0, 0.5), Rgb(0, 0, 255)),
            ((300.0, 1.0, 0.5), Rgb(255, 0, 255)),
            ((-60.0, 1.0, 0.5), Rgb(255, 0, 255)),
            ((0.0, 0.0, 0.5), Rgb(128, 128, 128)),
            ((0.0, 0.0, 1.0), Rgb(255, 255, 255)),
        ];
        for ((h, s, l), want) in cases {
            assert_eq!(hsl(h, s, l), want, "hsl({h}, {s}, {l})");
        }
    }

    #[test]
    fn frame_colours_are_stable_and_stay_in_their_family() {
        for runtime in Runtime::ALL {
            let f = family(runtime);
            assert_eq!(frame_color(runtime, "x"), frame_color(runtime, "x"));
            for name in ["a", "main.compute", "PyCFuncPtr_call", "[truncated]"] {
                let Rgb(r, g, b) = frame_color(runtime, name);
                let (max, min) = (
                    r.max(g).max(b) as f64 / 255.0,
                    r.min(g).min(b) as f64 / 255.0,
                );
                let light = (max + min) / 2.0;
                assert!(
                    light >= f.light.0 - 0.01 && light <= f.light.1 + 0.01,
                    "{runtime} {name}: lightness {light}"
                );
            }
        }
    }

    #[test]
    fn runtime_colours_are_distinct() {
        for a in Runtime::ALL {
            for b in Runtime::ALL {
                if a != b {
                    let (Rgb(r1, g1, b1), Rgb(r2, g2, b2)) = (runtime_color(a), runtime_color(b));
                    let d = (r1 as i32 - r2 as i32).abs()
                        + (g1 as i32 - g2 as i32).abs()
                        + (b1 as i32 - b2 as i32).abs();
                    assert!(d > 60, "{a} and {b} are too close: {d}");
                }
            }
        }
    }
}
