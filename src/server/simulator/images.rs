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
    let img = render(&link, width);
    image_response(if body["is_hyaline"].as_bool().unwrap_or(false) { png_bytes(&img, true) } else { jpeg_bytes(&img) })
}

/// The QR for `link` at EC level M, drawn at least `width` pixels wide with its quiet
/// zone. The mask is fixed (pattern 0) instead of the lowest-penalty one of eight: any
/// mask decodes, and scoring all eight took most of the drawing time (0.42 ms of 0.48 per
/// code). A link too long for a QR draws a blank square.
pub(super) fn render(link: &str, width: u32) -> image::GrayImage {
    use qrcode::{EcLevel, bits, canvas::Canvas, canvas::MaskPattern, ec};
    let modules = bits::encode_auto(link.as_bytes(), EcLevel::M).and_then(|b| {
        let version = b.version();
        let (data, ecc) = ec::construct_codewords(&b.into_bytes(), version, EcLevel::M)?;
        let mut canvas = Canvas::new(version, EcLevel::M);
        canvas.draw_all_functional_patterns();
        canvas.draw_data(&data, &ecc);
        canvas.apply_mask(MaskPattern::Checkerboard);
        Ok((canvas.into_colors(), version.width().unsigned_abs() as usize))
    });
    match modules {
        Ok((colors, n)) => qrcode::render::Renderer::<image::Luma<u8>>::new(&colors, n, 4).min_dimensions(width, width).build(),
        Err(_) => image::GrayImage::from_pixel(width, width, image::Luma([255])),
    }
}

/// Baseline JPEG, grayscale, quality 92, by `jpeg-encoder` (SIMD where the CPU has it):
/// 0.6 ms for a 450-pixel code against 1.2 ms with the `image` crate's encoder.
fn jpeg_bytes(img: &image::GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    let (w, h) = (u16::try_from(img.width()).unwrap_or(u16::MAX), u16::try_from(img.height()).unwrap_or(u16::MAX));
    let _ = jpeg_encoder::Encoder::new(&mut out, 92).encode(img.as_raw(), w, h, jpeg_encoder::ColorType::Luma);
    out
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
