//! Validity and canonical SMILES without building an engine molecule: the stages of cosmolkit's
//! `Molecule::from_smiles` (parse, remove hydrogens and sanitize, stereo perception) and of its
//! SMILES writer, called one by one, so that a SMILES with no stereo marks can skip stereo
//! perception. There its only products are CIP ranks and "possible stereocentre" flags, which the
//! canonical writer does not read, and it costs about a fifth of the engine's time on MOSES
//! molecules. Verdicts, messages and canonical text are the engine's own; a test holds them equal
//! to `Molecule::parse` + `canonical_smiles` on every fixture and on broken SMILES.

use cosmolkit::SmilesError;
use cosmolkit_core::{RemoveHsParams, RingInfo};
use cosmolkit_smiles::{SmilesParseParams, SmilesRecord, SmilesRecordView, SmilesWriteParams};

/// A parsed and sanitized molecule as the engine's detached parts.
pub(crate) struct Sanitized {
    record: SmilesRecord,
    rings: Option<RingInfo>,
}

/// Whether `smiles` can carry stereochemistry: tetrahedral and other `@` marks, directional
/// bonds, or a CXSMILES extension (which follows whitespace). Without any, stereo perception
/// has nothing to perceive. Anything but printable ASCII (a separator the parser might read as
/// whitespace) takes the whole path too.
fn may_carry_stereo(smiles: &str) -> bool {
    smiles
        .bytes()
        .any(|b| matches!(b, b'@' | b'/' | b'\\') || !b.is_ascii_graphic())
}

/// Parses and sanitizes as `cosmolkit::Molecule::from_smiles` does (RDKit's `MolFromSmiles`);
/// an error carries the engine's message for that stage.
pub(crate) fn sanitize(smiles: &str) -> Result<Sanitized, String> {
    let fail = |error: SmilesError| error.to_string();
    let params = SmilesParseParams::default();
    let parsed = cosmolkit_smiles::parse_smiles(smiles, &params).map_err(|e| fail(e.into()))?;
    let removed = cosmolkit_core::remove_hydrogens_with_params(
        parsed.topology,
        parsed.coordinates,
        parsed.properties,
        &RemoveHsParams {
            update_explicit_count: true,
            sanitize: params.sanitize,
            ..RemoveHsParams::default()
        },
    )
    .map_err(|e| fail(e.into()))?;
    let mut valence = removed.final_valence;
    let mut rings = removed.final_rings;
    let mut record = SmilesRecord {
        topology: removed.topology,
        coordinates: removed.coordinates,
        properties: removed.properties,
    };
    if may_carry_stereo(smiles) {
        record =
            cosmolkit_smiles::finalize_smiles_stereo(record, &params, &mut valence, &mut rings)
                .map_err(|e| fail(e.into()))?;
    } else {
        // Tells the writer perception is done, as `finalize_smiles_stereo` would have.
        record
            .properties
            .set_computed_prop("_StereochemDone", 1i32)
            .map_err(|e| e.to_string())?;
    }
    Ok(Sanitized { record, rings })
}

/// The canonical SMILES (RDKit's `MolToSmiles` defaults), as `Molecule::to_smiles` writes it.
pub(crate) fn canonical_smiles(molecule: &Sanitized) -> Result<String, String> {
    let view = SmilesRecordView {
        topology: &molecule.record.topology,
        coordinates: &molecule.record.coordinates,
        properties: &molecule.record.properties,
        // As the engine molecule serves its rings: only once they are found.
        rings: molecule.rings.as_ref().filter(|r| r.is_initialized()),
    };
    let text = cosmolkit_smiles::write_smiles_with_params(view, &SmilesWriteParams::default())
        .map_err(|e| e.to_string())?;
    String::from_utf8(text.as_ref().to_vec()).map_err(|e| e.to_string())
}
