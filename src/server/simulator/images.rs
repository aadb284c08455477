//! The images the simulator draws: real, scannable QR codes, as WeChat sends them.

use super::Simulator;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Everything but RFC 3986's unreserved characters is escaped in a query value.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The code image as WeChat sends it: a real QR holding a link to the simulated phone
/// (`/_wechat/phone?<param>=<value>`), JPEG, or PNG with transparency for `is_hyaline`.
pub(super) fn code_image(sim: &Simulator, body: &Value, param: &str, value: &str) -> Response {
    let width = body["width"].as_u64().unwrap_or(430).clamp(280, 1280) as u32;
    let link = format!("{}/_wechat/phone?{param}={}", sim.cfg.public_url, percent_encoding::utf8_percent_encode(value, QUERY_VALUE));
    image_response(if body["is_hyaline"].as_bool().unwrap_or(false) {
        png_bytes(&render(&link, width), true)
    } else {
        qr_jpeg(&link, width)
    })
}

/// Modules a side of the quiet zone (QR's own minimum).
const QUIET: usize = 4;

/// The QR for `link` at EC level M as its dark/light modules, row by row, and the
/// number a side. The mask is fixed (pattern 0) instead of the lowest-penalty one of
/// eight: any mask decodes, and scoring all eight took most of the drawing time (0.42 ms
/// of 0.48 per code). None for a link too long for a QR.
fn modules(link: &str) -> Option<(Vec<qrcode::Color>, usize)> {
    use qrcode::{EcLevel, bits, canvas::Canvas, canvas::MaskPattern, ec};
    let b = bits::encode_auto(link.as_bytes(), EcLevel::M).ok()?;
    let version = b.version();
    let (data, ecc) = ec::construct_codewords(&b.into_bytes(), version, EcLevel::M).ok()?;
    let mut canvas = Canvas::new(version, EcLevel::M);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&data, &ecc);
    canvas.apply_mask(MaskPattern::Checkerboard);
    Some((canvas.into_colors(), version.width().unsigned_abs() as usize))
}

/// The QR for `link`, drawn at least `width` pixels wide with its quiet zone. A link
/// too long for a QR draws a blank square.
pub(super) fn render(link: &str, width: u32) -> image::GrayImage {
    match modules(link) {
        Some((colors, n)) => {
            qrcode::render::Renderer::<image::Luma<u8>>::new(&colors, n, QUIET as u32).min_dimensions(width, width).build()
        }
        None => image::GrayImage::from_pixel(width, width, image::Luma([255])),
    }
}

/// The QR for `link` as a baseline grayscale JPEG about `width` pixels wide. Each module
/// is a whole number of 8×8 blocks (the multiple of 8 pixels nearest `width`'s share),
/// so every block is one flat colour and its whole JPEG code is a DC difference and an
/// end of block: written directly, with no DCT, it takes microseconds where a general
/// encoder took 0.6 ms (a quarter of the demo server's CPU per login, on WeChat's side
/// of the flow), and the file is about 5 KB instead of 40 KB. Exact: decoders give back
/// pure black and white. A link too long for a QR draws a blank square.
fn qr_jpeg(link: &str, width: u32) -> Vec<u8> {
    let (colors, n) = modules(link).unwrap_or_default();
    let side = n + 2 * QUIET;
    let module_px = ((width as usize / side + 4) / 8).max(1) * 8;
    let blocks = side * module_px / 8;
    let px = u16::try_from(blocks * 8).unwrap_or(u16::MAX).to_be_bytes();
    let dark = |row: usize, col: usize| {
        let (r, c) = (row * 8 / module_px, col * 8 / module_px);
        (QUIET..QUIET + n).contains(&r) && (QUIET..QUIET + n).contains(&c) && colors[(r - QUIET) * n + (c - QUIET)] == qrcode::Color::Dark
    };
    let mut out = Vec::with_capacity(blocks * blocks / 2 + 200);
    out.extend_from_slice(&[0xFF, 0xD8]); // SOI
    out.extend_from_slice(b"\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"); // APP0
    // Quantisation: 8 everywhere, so a flat block's DC is its level-shifted value.
    out.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
    out.extend_from_slice(&[8; 64]);
    out.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08, px[0], px[1], px[0], px[1], 0x01, 0x01, 0x11, 0x00]); // SOF0
    // Huffman tables: DC categories 0, 7 and 8 (the first block's 127 or -128, then
    // differences of 0 or ±255) as 00, 01, 10; AC only the end of block, as 00.
    out.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x28, 0x00, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 8]);
    out.extend_from_slice(&[0x10, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]); // SOS
    let mut bits = BitWriter { out, acc: 0, len: 0 };
    let mut previous = 0i32;
    for row in 0..blocks {
        for col in 0..blocks {
            let dc = if dark(row, col) { -128 } else { 127 };
            let diff = dc - previous;
            previous = dc;
            match diff.unsigned_abs() {
                0 => bits.put(0b00, 2),
                m => {
                    let (code, size) = if m < 128 { (0b01, 7) } else { (0b10, 8) };
                    bits.put(code, 2);
                    // Negative values go as their one's complement in `size` bits.
                    bits.put(if diff < 0 { (diff - 1) as u32 } else { diff as u32 }, size);
                }
            }
            bits.put(0b00, 2); // end of block: every AC coefficient is zero
        }
    }
    let mut out = bits.finish();
    out.extend_from_slice(&[0xFF, 0xD9]); // EOI
    out
}

/// JPEG's entropy-coded bits, most significant first, with a 0x00 stuffed after each
/// 0xFF byte.
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    len: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, size: u32) {
        self.acc = (self.acc << size) | (value & ((1 << size) - 1));
        self.len += size;
        while self.len >= 8 {
            self.len -= 8;
            let byte = (self.acc >> self.len) as u8;
            self.out.push(byte);
            if byte == 0xFF {
                self.out.push(0);
            }
        }
        self.acc &= (1 << self.len) - 1;
    }

    /// Pads the last byte with one bits, as the standard asks.
    fn finish(mut self) -> Vec<u8> {
        if self.len > 0 {
            self.put(0xFF, 8 - self.len);
        }
        self.out
    }
}

/// PNG; with `transparent`, white becomes transparent (`is_hyaline`).
pub(super) fn png_bytes(img: &image::GrayImage, transparent: bool) -> Vec<u8> {
    use image::ImageEncoder as _;
    let mut out = Vec::new();
    let enc = image::codecs::png::PngEncoder::new(&mut out);
    let _ = if transparent {
        let la: Vec<u8> = img.pixels().flat_map(|p| [p.0[0], if p.0[0] > 127 { 0 } else { 255 }]).collect();
        enc.write_image(&la, img.width(), img.height(), image::ExtendedColorType::La8)
    } else {
        enc.write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::L8)
    };
    out
}

pub(super) fn image_response(bytes: Vec<u8>) -> Response {
    let kind = if bytes.starts_with(b"\x89PNG") { "image/png" } else { "image/jpeg" };
    let mut r = bytes.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

#[cfg(all(test, feature = "test-support"))]
mod tests {
    use super::{qr_jpeg, render};

    /// The directly written JPEG decodes, with the `image` crate's decoder, to the very
    /// picture the general renderer draws at that size, black and white to within a
    /// level, and rqrr reads the link back.
    #[test]
    fn the_flat_block_jpeg_is_the_rendered_qr() {
        for (link, width) in [
            ("http://127.0.0.1:3000/_wechat/phone?scene=t0KyZ_-x", 280),
            ("https://login.example.com/_wechat/phone?path=pages%2Flogin%2Findex%3Fscene%3Dabc", 430),
            ("x", 1280),
        ] {
            let bytes = qr_jpeg(link, width);
            let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).expect("a JPEG").to_luma8();
            assert_eq!(img.width() % 8, 0);
            assert!((width * 3 / 4..=width * 4 / 3).contains(&img.width()), "{width} → {}", img.width());
            let drawn = render(link, img.width());
            assert_eq!(drawn.dimensions(), img.dimensions(), "the same module size");
            let off = img.pixels().zip(drawn.pixels()).filter(|(a, b)| a.0[0].abs_diff(b.0[0]) > 1).count();
            assert_eq!(off, 0, "every pixel as drawn ({link})");
            let mut prepared = rqrr::PreparedImage::prepare(img);
            let grids = prepared.detect_grids();
            assert_eq!(grids.len(), 1);
            assert_eq!(grids[0].decode().expect("decodes").1, link);
        }
    }
}
