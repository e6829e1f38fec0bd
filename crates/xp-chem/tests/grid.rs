//! Molecule grid images: layout, skipping, legends, and that every drawing stays inside its cell.

use xp_chem::{ChemError, GridOptions, grid_image};

const MOLECULES: [&str; 6] = [
    "CC(=O)Oc1ccccc1C(=O)O",
    "not a molecule",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "C1CC1(",
    "O=C(O)c1ccccc1[N+](=O)[O-]",
];

fn is_ink(px: &[u8]) -> bool {
    px[0] < 200 || px[1] < 200 || px[2] < 200
}

/// Bounding box (x0, y0, x1, y1) of the non-white pixels inside one cell, or None when blank.
fn ink_box(
    image: &xp_chem::GridImage,
    cx: u32,
    cy: u32,
    w: u32,
    h: u32,
) -> Option<(u32, u32, u32, u32)> {
    let mut found: Option<(u32, u32, u32, u32)> = None;
    for y in cy..cy + h {
        for x in cx..cx + w {
            let at = ((y * image.width + x) * 4) as usize;
            if is_ink(&image.rgba[at..at + 4]) {
                found = Some(match found {
                    None => (x, y, x, y),
                    Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
                });
            }
        }
    }
    found
}

#[test]
fn invalid_smiles_are_skipped_and_cells_laid_out_in_rows() {
    let image = grid_image(&MOLECULES, None, &GridOptions::default()).unwrap();
    assert_eq!(image.drawn, 4);
    assert_eq!(
        image.skipped.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [1, 4]
    );
    assert_eq!((image.width, image.height), (800, 200));
    assert_eq!(image.rgba.len(), 800 * 200 * 4);
    assert!(image.rgba.chunks(4).all(|px| px[3] == 255), "opaque");
    for cell in 0..4 {
        let (x0, y0, x1, y1) = ink_box(&image, cell * 200, 0, 200, 200)
            .unwrap_or_else(|| panic!("cell {cell} is blank"));
        // Not clipped: the drawing keeps clear of every edge of its cell.
        assert!(
            x0 > cell * 200 && x1 < cell * 200 + 199,
            "cell {cell}: x {x0}..{x1}"
        );
        assert!(y0 > 0 && y1 < 199, "cell {cell}: y {y0}..{y1}");
    }
}

#[test]
fn only_the_first_max_mols_are_considered_and_rows_wrap() {
    let many: Vec<&str> = std::iter::repeat_n("c1ccccc1O", 20).collect();
    let image = grid_image(&many, None, &GridOptions::default()).unwrap();
    assert_eq!(image.drawn, 16);
    assert_eq!((image.width, image.height), (800, 800));
    let narrow = GridOptions {
        mols_per_row: 3,
        sub_img_size: (120, 100),
        max_mols: 5,
    };
    let image = grid_image(&many, None, &narrow).unwrap();
    assert_eq!((image.drawn, image.width, image.height), (5, 360, 200));
    // The empty sixth slot stays white.
    assert_eq!(ink_box(&image, 240, 100, 120, 100), None);
}

#[test]
fn legends_are_drawn_under_each_molecule() {
    let legends = ["aspirin", "-", "caffeine", "ibuprofen", "-", "x"];
    let with = grid_image(&MOLECULES, Some(&legends), &GridOptions::default()).unwrap();
    let without = grid_image(&MOLECULES, None, &GridOptions::default()).unwrap();
    // The legend band (bottom 20 px of a cell) has ink only when legends are given.
    assert!(ink_box(&with, 0, 182, 200, 18).is_some());
    assert_eq!(ink_box(&without, 0, 182, 200, 18), None);
    // A long legend is shortened, not clipped at the cell edge.
    let long = "C".repeat(200);
    let image = grid_image(&["CCO"], Some(&[long.as_str()]), &GridOptions::default()).unwrap();
    let (x0, _, x1, _) = ink_box(&image, 0, 180, 200, 20).unwrap();
    assert!(x0 > 0 && x1 < 199, "legend spans {x0}..{x1}");
}

#[test]
fn png_bytes_decode_to_the_same_pixels() {
    let image = grid_image(&MOLECULES[..1], None, &GridOptions::default()).unwrap();
    let png = image.to_png().unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(&png));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (200, 200));
    assert_eq!(info.color_type, png::ColorType::Rgba);
    assert_eq!(&pixels[..info.buffer_size()], &image.rgba[..]);
}

#[test]
fn nothing_valid_and_bad_layouts_are_errors() {
    let err = grid_image(&["xyz", "C1CC"], None, &GridOptions::default()).unwrap_err();
    match &err {
        ChemError::NothingToDraw { skipped } => {
            let indices: Vec<usize> = skipped.iter().map(|(i, _)| *i).collect();
            assert_eq!(indices, [0, 1]);
            assert!(
                skipped
                    .iter()
                    .all(|(_, e)| matches!(e, ChemError::Invalid { .. }))
            );
        }
        other => panic!("expected nothing to draw, got {other}"),
    }
    assert!(
        err.to_string().contains("none of the first 2 SMILES"),
        "{err}"
    );
    assert!(err.to_string().contains("nothing to draw"));
    let bad = GridOptions {
        mols_per_row: 0,
        ..GridOptions::default()
    };
    assert!(matches!(
        grid_image(&["C"], None, &bad),
        Err(ChemError::Draw(_))
    ));
    let err = grid_image(&["C", "CC"], Some(&["one"]), &GridOptions::default()).unwrap_err();
    assert!(err.to_string().contains("one legend per SMILES"), "{err}");
}

/// Writes the pictures for a person to look at: `XP_GRID_OUT=/tmp cargo test -p xp-chem --test grid`.
#[test]
fn write_pictures_when_asked() {
    let Some(dir) = std::env::var_os("XP_GRID_OUT") else {
        return;
    };
    let moses = [
        "CCCS(=O)c1ccc2[nH]c(=NC(=O)OC)[nH]c2c1",
        "CC(C)(C)C(=O)C(Oc1ccc(Cl)cc1)n1ccnc1",
        "Cc1c(Cl)cccc1Nc1ncccc1C(=O)OCC(O)CO",
        "Cn1cnc2c1c(=O)n(CC(O)CO)c(=O)n2C",
        "CC1Oc2ccc(Cl)cc2N(CC(O)CO)C1=O",
        "O=C(O)c1ccccc1[N+](=O)[O-]",
        "COc1ccc(-c2cc(=O)c3c(O)c(OC)c(OC)cc3o2)cc1O",
        "C[C@@H]1CC[C@H]2C(C)(C)[C@@H]3C[C@@]12CC[C@@]3(C)O",
    ];
    let legends: Vec<String> = moses.iter().map(|s| s.to_string()).collect();
    let legends: Vec<&str> = legends.iter().map(String::as_str).collect();
    let image = grid_image(&moses, Some(&legends), &GridOptions::default()).unwrap();
    std::fs::write(
        std::path::Path::new(&dir).join("grid.png"),
        image.to_png().unwrap(),
    )
    .unwrap();
}
