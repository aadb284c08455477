//! Avatars as people upload them (WeChat's 头像昵称填写: a file from `chooseAvatar`, sent by
//! `wx.uploadFile`): decoded with bounds on bytes and pixels, re-encoded small as PNG (no
//! metadata survives: only pixels are written), stored in the database so every instance
//! serves them, at a URL named by their content that never changes.

use std::io::Cursor;

/// Largest file accepted.
pub const MAX_BYTES: usize = 1 << 20;
/// Largest side decoded: a 20,000 × 20,000 image is refused before its pixels are.
pub const MAX_SIDE: u32 = 4096;
/// The side of the stored avatar.
pub const SIDE: u32 = 160;

/// Why a file is not an avatar.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadImage {
    #[error("over {MAX_BYTES} bytes")]
    TooLarge,
    #[error("not a PNG or JPEG image")]
    NotAnImage,
    #[error("does not decode within the limits: {0}")]
    Undecodable(String),
}

/// `bytes` as a [`SIDE`]-pixel square PNG (centre-cropped), or why not.
pub fn reencode(bytes: &[u8]) -> Result<Vec<u8>, BadImage> {
    use image::ImageEncoder as _;
    if bytes.len() > MAX_BYTES {
        return Err(BadImage::TooLarge);
    }
    let mut reader = image::ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|_| BadImage::NotAnImage)?;
    if !matches!(reader.format(), Some(image::ImageFormat::Png | image::ImageFormat::Jpeg)) {
        return Err(BadImage::NotAnImage);
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(64 << 20);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| BadImage::Undecodable(e.to_string()))?;
    let square = img.resize_to_fill(SIDE, SIDE, image::imageops::FilterType::Triangle).to_rgb8();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(square.as_raw(), SIDE, SIDE, image::ExtendedColorType::Rgb8)
        .map_err(|e| BadImage::Undecodable(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        use image::ImageEncoder as _;
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out).write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8).unwrap();
        out
    }

    #[test]
    fn avatars_come_out_small_square_pngs_and_bad_files_are_refused() {
        let out = reencode(&png(300, 200)).unwrap();
        let img = image::load_from_memory(&out).unwrap();
        assert_eq!((img.width(), img.height()), (SIDE, SIDE));
        assert!(out.starts_with(b"\x89PNG"));
        assert_eq!(reencode(b"GIF89a...."), Err(BadImage::NotAnImage));
        assert_eq!(reencode(b"hello, not an image"), Err(BadImage::NotAnImage));
        assert_eq!(reencode(&vec![0u8; MAX_BYTES + 1]), Err(BadImage::TooLarge));
        // A PNG that says it is 20,000 × 20,000: refused from its header, nothing allocated.
        let mut huge = png(1, 1);
        huge[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        assert!(matches!(reencode(&huge), Err(BadImage::Undecodable(_))));
        let mut cut = png(64, 64);
        cut.truncate(cut.len() / 2);
        assert!(matches!(reencode(&cut), Err(BadImage::Undecodable(_))));
    }
}
