//! Molecule grid images, as RDKit's `MolsToGridImage` draws them for the seed's
//! `log_molecules`: the first 16 SMILES, invalid ones skipped, one cell each with an optional
//! legend underneath. Each molecule is drawn by cosmolkit as SVG; the cells are composed into
//! one SVG and rasterised with resvg, using a bundled font (Noto Sans, OFL) so the legends look
//! the same on every machine.

use std::sync::{Arc, OnceLock};

use resvg::{tiny_skia, usvg};

use crate::molecule::{ChemError, Molecule};

/// Noto Sans Regular (SIL Open Font License 1.1, `assets/NotoSans-OFL-1.1.txt`).
static FONT: &[u8] = include_bytes!("../assets/NotoSans-Regular.ttf");
const FONT_FAMILY: &str = "Noto Sans";

/// Layout of a grid: RDKit's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GridOptions {
    /// Cells per row.
    pub mols_per_row: usize,
    /// Width and height of one cell, in pixels (the legend is drawn inside the cell).
    pub sub_img_size: (u32, u32),
    /// Only the first `max_mols` SMILES are considered (the seed draws 16).
    pub max_mols: usize,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            mols_per_row: 4,
            sub_img_size: (200, 200),
            max_mols: 16,
        }
    }
}

/// A rendered grid: straight RGBA pixels, row-major, height x width x 4 (opaque white background).
#[derive(Debug, Clone)]
pub struct GridImage {
    pub width: u32,
    pub height: u32,
    /// `height * width * 4` bytes.
    pub rgba: Vec<u8>,
    /// How many molecules were drawn.
    pub drawn: usize,
    /// Index (into the input) and reason of each SMILES skipped as invalid.
    pub skipped: Vec<(usize, ChemError)>,
}

impl GridImage {
    /// The image as PNG bytes.
    pub fn to_png(&self) -> Result<Vec<u8>, ChemError> {
        let size = tiny_skia::IntSize::from_wh(self.width, self.height)
            .ok_or_else(|| ChemError::Draw("empty image".to_owned()))?;
        let pixmap = tiny_skia::Pixmap::from_vec(self.rgba.clone(), size)
            .ok_or_else(|| ChemError::Draw("pixel buffer does not match its size".to_owned()))?;
        pixmap
            .encode_png()
            .map_err(|e| ChemError::Draw(format!("PNG encoding failed: {e}")))
    }
}

/// Draws the first `options.max_mols` of `smiles` (invalid ones skipped) in a grid, each with
/// the legend of the same index when `legends` is given.
pub fn grid_image(
    smiles: &[&str],
    legends: Option<&[&str]>,
    options: &GridOptions,
) -> Result<GridImage, ChemError> {
    let (cell_w, cell_h) = options.sub_img_size;
    if options.mols_per_row == 0 || cell_w < 50 || cell_h < 50 {
        return Err(ChemError::Draw(format!(
            "a grid needs at least one molecule per row and cells of at least 50x50 pixels, got {} per row and {cell_w}x{cell_h}",
            options.mols_per_row
        )));
    }
    if let Some(legends) = legends
        && legends.len() < smiles.len().min(options.max_mols)
    {
        return Err(ChemError::Draw(format!(
            "{} legends for {} molecules; give one legend per SMILES",
            legends.len(),
            smiles.len().min(options.max_mols)
        )));
    }
    let legend_h = if legends.is_some() {
        (cell_h / 10).max(16)
    } else {
        0
    };
    let mut cells = Vec::new();
    let mut skipped = Vec::new();
    for (index, text) in smiles.iter().take(options.max_mols).enumerate() {
        match Molecule::parse(text).and_then(|m| m.to_svg(cell_w, cell_h - legend_h)) {
            Ok(svg) => cells.push((index, svg)),
            Err(err) => skipped.push((index, err)),
        }
    }
    if cells.is_empty() {
        return Err(ChemError::NothingToDraw { skipped });
    }
    let cols = options.mols_per_row.min(cells.len());
    let rows = cells.len().div_ceil(cols);
    let (width, height) = (cols as u32 * cell_w, rows as u32 * cell_h);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"><rect width="100%" height="100%" fill="white"/>"#
    );
    let font_size = (legend_h as f32 * 0.75).min(14.0);
    for (slot, (index, cell)) in cells.iter().enumerate() {
        let x = (slot % cols) as u32 * cell_w;
        let y = (slot / cols) as u32 * cell_h;
        svg.push_str(&format!(r#"<g transform="translate({x},{y})">"#));
        svg.push_str(&namespaced_ids(strip_prolog(cell), slot));
        if let Some(legends) = legends {
            let text = fit_legend(legends[*index], cell_w as f32, font_size);
            svg.push_str(&format!(
                r#"<text x="{}" y="{}" font-family="{FONT_FAMILY}" font-size="{font_size}" text-anchor="middle" fill="black">{}</text>"#,
                cell_w / 2,
                cell_h as f32 - legend_h as f32 * 0.3,
                xml_escape(&text)
            ));
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    let rgba = rasterize(&svg, width, height)?;
    Ok(GridImage {
        width,
        height,
        rgba,
        drawn: cells.len(),
        skipped,
    })
}

fn rasterize(svg: &str, width: u32, height: u32) -> Result<Vec<u8>, ChemError> {
    static FONTS: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    let fonts = FONTS.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(FONT.to_vec());
        db.set_sans_serif_family(FONT_FAMILY);
        Arc::new(db)
    });
    let options = usvg::Options {
        font_family: FONT_FAMILY.to_owned(),
        fontdb: fonts.clone(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options)
        .map_err(|e| ChemError::Draw(format!("the composed SVG did not parse: {e}")))?;
    let mut pixmap = tiny_skia::Pixmap::new(width, height)
        .ok_or_else(|| ChemError::Draw(format!("cannot allocate a {width}x{height} image")))?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    // The background is opaque, so premultiplied and straight alpha are the same bytes.
    Ok(pixmap.take())
}

/// The `<svg>` element of a standalone SVG document, without its XML declaration.
fn strip_prolog(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |at| &svg[at..])
}

/// Makes `id`s unique per cell so one molecule's clip paths cannot be picked up by another.
fn namespaced_ids(svg: &str, slot: usize) -> String {
    svg.replace("id=\"", &format!("id=\"c{slot}-"))
        .replace("url(#", &format!("url(#c{slot}-"))
        .replace("href=\"#", &format!("href=\"#c{slot}-"))
}

/// Shortens `text` with an ellipsis so it fits `width` pixels at `font_size` (Noto Sans
/// glyphs are at most about two thirds of the font size wide; capitals such as C the widest).
fn fit_legend(text: &str, width: f32, font_size: f32) -> String {
    let fits = ((width - 8.0) / (font_size * 0.66)).max(4.0) as usize;
    if text.chars().count() <= fits {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(fits - 1).collect();
    short.push('…');
    short
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
