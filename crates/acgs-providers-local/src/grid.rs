//! `split_grid`: an image cut into rows × cols images, in pure Rust (the `image` crate), with
//! decoding limits so a small file cannot ask for a huge canvas.

use std::io::Cursor;

use acgs_core::provider::{FailureClass, ProviderError};

use crate::ffmpeg::failure;

/// The widest or tallest image cut.
const MAX_SIDE: u32 = 16_384;
/// The most memory decoding may take.
const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// `bytes` cut into `rows` × `cols` PNG images, row by row; the last row and column take what
/// does not divide evenly.
pub(crate) fn split(bytes: &[u8], rows: u32, cols: u32) -> Result<Vec<Vec<u8>>, ProviderError> {
    let unreadable = |why: String| failure(FailureClass::Rejected, "local.unreadable_media", why);
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| unreadable(format!("the image could not be read: {e}")))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let picture = reader
        .decode()
        .map_err(|e| unreadable(format!("the image could not be decoded: {e}")))?;
    let (width, height) = (picture.width(), picture.height());
    if rows == 0 || cols == 0 || width < cols || height < rows {
        return Err(failure(
            FailureClass::Rejected,
            "local.bad_grid",
            format!("a {width} × {height} image cannot be cut into {rows} × {cols}"),
        ));
    }
    let (tile_w, tile_h) = (width / cols, height / rows);
    let mut tiles = Vec::new();
    for row in 0..rows {
        for col in 0..cols {
            let (x, y) = (col * tile_w, row * tile_h);
            let w = if col + 1 == cols { width - x } else { tile_w };
            let h = if row + 1 == rows { height - y } else { tile_h };
            let mut png = Vec::new();
            picture
                .crop_imm(x, y, w, h)
                .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(|e| {
                    failure(
                        FailureClass::Other,
                        "local.io",
                        format!("a tile could not be encoded: {e}"),
                    )
                })?;
            tiles.push(png);
        }
    }
    Ok(tiles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let picture = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([
                u8::try_from(x % 256).unwrap_or(0),
                u8::try_from(y % 256).unwrap_or(0),
                7,
            ])
        });
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(picture)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("encode");
        out
    }

    #[test]
    fn a_grid_gives_rows_times_cols_tiles_covering_the_image() {
        let tiles = split(&png(65, 41), 2, 3).expect("split");
        assert_eq!(tiles.len(), 6);
        let sizes: Vec<(u32, u32)> = tiles
            .iter()
            .map(|t| {
                let img = image::load_from_memory(t).expect("png");
                (img.width(), img.height())
            })
            .collect();
        assert_eq!(
            sizes,
            [(21, 20), (21, 20), (23, 20), (21, 21), (21, 21), (23, 21)]
        );
        let first = image::load_from_memory(&tiles[4]).expect("png").to_rgb8();
        assert_eq!(
            first.get_pixel(0, 0).0,
            [21, 20, 7],
            "tile (1,1) starts at x 21, y 20"
        );
    }

    #[test]
    fn text_and_tiny_images_are_refused() {
        let err = split(b"hello, I am text named grid.png", 2, 2).expect_err("not an image");
        assert_eq!(err.code, "local.unreadable_media");
        let err = split(&png(3, 3), 4, 4).expect_err("too small");
        assert_eq!(err.code, "local.bad_grid");
    }
}
