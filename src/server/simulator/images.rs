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

pub(super) fn render(link: &str, width: u32) -> image::GrayImage {
    match qrcode::QrCode::with_error_correction_level(link.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => code.render::<image::Luma<u8>>().quiet_zone(true).min_dimensions(width, width).build(),
        Err(_) => image::GrayImage::from_pixel(width, width, image::Luma([255])),
    }
}

fn jpeg_bytes(img: &image::GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92).encode_image(img);
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
