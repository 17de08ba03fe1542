use super::encode::{self, IccVersion, Phone, Space};
use super::*;
use image::ImageEncoder;

/// A picture with no symmetry (each corner its own colour), so a wrong orientation shows.
fn scene(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (40 + 180 * x / w) as u8,
            (60 + 150 * y / h) as u8,
            if x < w / 3 && y < h / 4 { 230 } else { 70 },
        ])
    })
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn max_diff(a: &RgbImage, b: &RgbImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap()
}

fn phone(orientation: u8, space: Space, icc: Option<IccVersion>) -> Phone {
    Phone {
        orientation,
        space,
        icc,
        quality: 95,
    }
}

#[test]
fn every_exif_orientation_is_shown_upright() {
    let d = tempfile::tempdir().unwrap();
    let shown = scene(48, 32);
    for o in 1..=8u8 {
        let png = encode::phone_png(&DynamicImage::ImageRgb8(shown.clone()), phone(o, Space::Srgb, None)).unwrap();
        let stored = image::load_from_memory(&png).unwrap();
        let sideways = (5..=8).contains(&o);
        assert_eq!(stored.width() == 32, sideways, "orientation {o} is stored sideways");
        let p = read(&write(d.path(), &format!("o{o}.png"), &png)).unwrap();
        assert_eq!(p.info.orientation, o);
        assert_eq!((p.info.width, p.info.height), (48, 32));
        assert_eq!(max_diff(&p.pixels.to_rgb8(), &shown), 0, "orientation {o}");
        let jpg = encode::phone_jpeg(&shown, phone(o, Space::Srgb, None)).unwrap();
        let path = write(d.path(), &format!("o{o}.jpg"), &jpg);
        assert_eq!(shown_size(&path, "image").unwrap(), (48, 32));
        let p = read(&path).unwrap();
        assert_eq!((p.info.orientation, p.info.format.as_str()), (o, "jpg"));
        assert!(max_diff(&p.pixels.to_rgb8(), &shown) < 40, "orientation {o} (JPEG)");
    }
}

/// Display P3 and Adobe RGB (1998) to linear sRGB by the published matrices (D65 white, no
/// profile involved): what a conversion through the embedded profile must give.
type M3 = [[f64; 3]; 3];

fn srgb_from(space: Space, rgb: [f64; 3]) -> [f64; 3] {
    let (m, lin): (M3, fn(f64) -> f64) = match space {
        Space::DisplayP3 => (
            [
                [0.486_570_9, 0.265_667_7, 0.198_217_3],
                [0.228_974_6, 0.691_738_5, 0.079_286_9],
                [0.0, 0.045_113_4, 1.043_944_4],
            ],
            crate::colour::srgb_to_linear,
        ),
        Space::AdobeRgb => (
            [
                [0.576_730_9, 0.185_554_0, 0.188_185_2],
                [0.297_376_9, 0.627_349_1, 0.075_274_1],
                [0.027_034_3, 0.070_687_2, 0.991_108_5],
            ],
            |v: f64| v.powf(563.0 / 256.0),
        ),
        Space::Srgb => return rgb,
    };
    let xyz_to_srgb = [
        [3.240_454_2, -1.537_138_5, -0.498_531_4],
        [-0.969_266_0, 1.876_010_8, 0.041_556_0],
        [0.055_643_4, -0.204_025_9, 1.057_225_2],
    ];
    let l = rgb.map(lin);
    let xyz: [f64; 3] = std::array::from_fn(|i| (0..3).map(|k| m[i][k] * l[k]).sum());
    let s: [f64; 3] = std::array::from_fn(|i| (0..3).map(|k| xyz_to_srgb[i][k] * xyz[k]).sum());
    s.map(crate::colour::linear_to_srgb)
}

#[test]
fn profiles_convert_as_the_profile_maths_says() {
    let d = tempfile::tempdir().unwrap();
    // skin-like and saturated values in the photo's own space, 8-bit
    let values: [[u8; 3]; 4] = [[205, 160, 135], [120, 80, 60], [230, 200, 180], [60, 140, 200]];
    for space in [Space::DisplayP3, Space::AdobeRgb] {
        for version in [IccVersion::V2, IccVersion::V4] {
            let img = RgbImage::from_fn(4, 1, |x, _| image::Rgb(values[x as usize]));
            let mut png = Vec::new();
            let mut enc = image::codecs::png::PngEncoder::new(&mut png);
            enc.set_icc_profile(space.icc(version).unwrap()).unwrap();
            enc.write_image(img.as_raw(), 4, 1, image::ExtendedColorType::Rgb8)
                .unwrap();
            let p = read(&write(d.path(), "p.png", &png)).unwrap();
            assert!(
                p.info.profile.ends_with("→ sRGB"),
                "{space:?} {version:?}: {}",
                p.info.profile
            );
            for (x, v) in values.iter().enumerate() {
                // a colour outside sRGB's gamut (the last one) is clipped to it
                let want = srgb_from(space, v.map(|c| f64::from(c) / 255.0)).map(|c| c.clamp(0.0, 1.0));
                let got = p.pixels.rgb(x as u32, 0);
                let off = (0..3).map(|k| (got[k] - want[k]).abs()).fold(0f64, f64::max);
                assert!(off < 2e-3, "{space:?} {version:?} {v:?}: {got:?} vs {want:?}");
            }
        }
    }
}

#[test]
fn srgb_profiles_and_no_profile_leave_the_pixels_as_they_are() {
    let d = tempfile::tempdir().unwrap();
    let shown = scene(16, 16);
    for (icc, says) in [
        (None, "sRGB (no profile)"),
        (Some(IccVersion::V4), "sRGB IEC61966-2.1"),
        (Some(IccVersion::V2), "sRGB IEC61966-2.1"),
    ] {
        let png = encode::phone_png(&DynamicImage::ImageRgb8(shown.clone()), phone(1, Space::Srgb, icc)).unwrap();
        let p = read(&write(d.path(), "s.png", &png)).unwrap();
        assert_eq!(p.info.profile, says);
        assert!(matches!(&p.pixels, Pixels::Rgb8(i) if *i == shown), "{icc:?}");
    }
}

#[test]
fn sixteen_bits_are_kept_and_grey_is_no_colour() {
    let d = tempfile::tempdir().unwrap();
    let deep = image::ImageBuffer::from_fn(3, 2, |x, y| image::Rgb([12_345u16 + x as u16, 40_000 + y as u16, 777]));
    let png = encode::phone_png(&DynamicImage::ImageRgb16(deep), phone(6, Space::Srgb, None)).unwrap();
    let p = read(&write(d.path(), "deep.png", &png)).unwrap();
    assert_eq!(
        (p.info.bit_depth, p.info.width, p.info.height, p.info.colour),
        (16, 3, 2, Colour::Rgb)
    );
    assert_eq!(p.pixels.rgb(1, 0)[0], 12_346.0 / 65535.0);
    // stored as grey, and as RGB with every pixel neutral
    let grey = image::GrayImage::from_fn(8, 8, |x, _| image::Luma([x as u8 * 20]));
    let mut png = Vec::new();
    DynamicImage::ImageLuma8(grey.clone())
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
    assert_eq!(
        read(&write(d.path(), "g.png", &png)).unwrap().info.colour,
        Colour::Grayscale
    );
    let mut jpg = Vec::new();
    DynamicImage::ImageRgb8(DynamicImage::ImageLuma8(grey).to_rgb8())
        .write_to(&mut Cursor::new(&mut jpg), ImageFormat::Png)
        .unwrap();
    assert_eq!(
        read(&write(d.path(), "g3.png", &jpg)).unwrap().info.colour,
        Colour::Grayscale
    );
    // a grey photo tagged Display P3: judged before the conversion, whose rounding tints it
    let rgb = DynamicImage::ImageLuma8(image::GrayImage::from_fn(8, 8, |x, y| {
        image::Luma([(x * 30 + y) as u8])
    }))
    .to_rgb8();
    let mut png = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut png);
    enc.set_icc_profile(Space::DisplayP3.icc(IccVersion::V4).unwrap())
        .unwrap();
    enc.write_image(rgb.as_raw(), 8, 8, image::ExtendedColorType::Rgb8)
        .unwrap();
    let p = read(&write(d.path(), "gp3.png", &png)).unwrap();
    assert_eq!(
        (p.info.colour, p.info.profile.as_str()),
        (Colour::Grayscale, "Display P3 → sRGB")
    );
}

#[test]
fn a_cmyk_jpeg_is_read_for_its_shapes_and_said_to_have_no_colour() {
    let d = tempfile::tempdir().unwrap();
    let cmyk: Vec<u8> = (0..12 * 8).flat_map(|i| [20, 60, 90, (i % 50) as u8]).collect();
    let mut jpg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpg, 90)
        .encode(&cmyk, 12, 8, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let p = read(&write(d.path(), "print.jpg", &jpg)).unwrap();
    assert_eq!((p.info.colour, p.pixels.dimensions()), (Colour::Cmyk, (12, 8)));
}

#[test]
fn broken_files_are_refused_with_one_line_naming_them() {
    let d = tempfile::tempdir().unwrap();
    let jpg = encode::phone_jpeg(&scene(64, 48), phone(1, Space::Srgb, None)).unwrap();
    let cases = [
        (
            "cut.jpg",
            jpg[..jpg.len() / 2].to_vec(),
            "is a broken JPEG: it ends before its end-of-image marker",
        ),
        ("empty.jpg", vec![], "is empty (0 bytes)"),
        (
            "notes.jpg",
            b"participant 7, session 2".to_vec(),
            "is not an image facepipe reads",
        ),
    ];
    for (name, bytes, says) in cases {
        let path = write(d.path(), name, &bytes);
        let e = format!("{:#}", read(&path).unwrap_err());
        assert!(e.contains(name) && e.contains(says), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(!e.contains("Some(") && !e.contains("{ "), "no Debug text: {e}");
    }
}
