//! A molecule as the graph a graph neural network reads: its atoms with the properties models
//! usually encode (as DeepChem's and DGL-LifeSci's featurizers do), and its bonds between them.

use cosmolkit::BondOrder;

use crate::molecule::{ChemError, Molecule, guarded};

/// One atom of a [`MolecularGraph`], hydrogens folded into their heavy atom as in the SMILES.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphAtom {
    pub atomic_number: u8,
    pub formal_charge: i8,
    /// Part of an aromatic ring (after sanitization, as RDKit's `GetIsAromatic`).
    pub aromatic: bool,
    /// Hydrogens attached, implicit and explicit (RDKit's `GetTotalNumHs`).
    pub hydrogens: u8,
    /// Bonded neighbours in the graph (RDKit's `GetDegree`).
    pub degree: u8,
}

/// The kind of a [`GraphBond`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BondKind {
    Single,
    Double,
    Triple,
    Aromatic,
    /// Dative, quadruple and the other rare orders, grouped.
    Other,
}

impl BondKind {
    /// Every kind, in the order of [`BondKind::index`].
    pub const ALL: [BondKind; 5] = [
        BondKind::Single,
        BondKind::Double,
        BondKind::Triple,
        BondKind::Aromatic,
        BondKind::Other,
    ];

    /// A dense index (0..5) for one-hot encodings and per-kind weights.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A bond between atoms `begin` and `end` (indices into [`MolecularGraph::atoms`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphBond {
    pub begin: usize,
    pub end: usize,
    pub kind: BondKind,
}

/// A molecule's atoms and bonds, in the order its SMILES wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MolecularGraph {
    pub atoms: Vec<GraphAtom>,
    pub bonds: Vec<GraphBond>,
}

impl Molecule {
    /// The molecule as a graph: atoms with their element, charge, aromaticity, hydrogens and
    /// degree, and the bonds between them.
    pub fn graph(&self) -> Result<MolecularGraph, ChemError> {
        guarded(|| {
            let atoms = self
                .inner
                .atoms()
                .iter()
                .map(|atom| {
                    let hydrogens = atom.total_hydrogens().map_err(|e| e.to_string())?;
                    Ok(GraphAtom {
                        atomic_number: atom.atomic_number(),
                        formal_charge: atom.formal_charge(),
                        aromatic: atom.is_aromatic(),
                        hydrogens: u8::try_from(hydrogens).unwrap_or(u8::MAX),
                        degree: u8::try_from(atom.degree()).unwrap_or(u8::MAX),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let bonds = self
                .inner
                .bonds()
                .iter()
                .map(|bond| GraphBond {
                    begin: bond.begin().index(),
                    end: bond.end().index(),
                    kind: if bond.is_aromatic() {
                        BondKind::Aromatic
                    } else {
                        match bond.order() {
                            BondOrder::Single => BondKind::Single,
                            BondOrder::Double => BondKind::Double,
                            BondOrder::Triple => BondKind::Triple,
                            BondOrder::Aromatic => BondKind::Aromatic,
                            _ => BondKind::Other,
                        }
                    },
                })
                .collect();
            Ok(MolecularGraph { atoms, bonds })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(smiles: &str) -> MolecularGraph {
        Molecule::parse(smiles).unwrap().graph().unwrap()
    }

    #[test]
    fn phenol_has_an_aromatic_ring_and_a_hydroxyl() {
        let g = graph("c1ccccc1O");
        assert_eq!(g.atoms.len(), 7);
        assert_eq!(g.bonds.len(), 7);
        let aromatic = g.bonds.iter().filter(|b| b.kind == BondKind::Aromatic);
        assert_eq!(aromatic.count(), 6);
        let oxygen = g.atoms[6];
        assert_eq!(
            (oxygen.atomic_number, oxygen.aromatic, oxygen.hydrogens),
            (8, false, 1)
        );
        assert_eq!(oxygen.degree, 1);
        // The carbon bearing the oxygen has no hydrogen and three neighbours.
        assert_eq!((g.atoms[5].hydrogens, g.atoms[5].degree), (0, 3));
        assert_eq!((g.atoms[0].hydrogens, g.atoms[0].degree), (1, 2));
        let single = g.bonds.iter().find(|b| b.kind == BondKind::Single).unwrap();
        assert_eq!((single.begin, single.end), (5, 6));
    }

    #[test]
    fn charges_and_bond_orders_are_read() {
        let g = graph("C#N.[NH4+].O=C=O");
        let kinds: Vec<BondKind> = g.bonds.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            [BondKind::Triple, BondKind::Double, BondKind::Double]
        );
        let ammonium = g.atoms[2];
        assert_eq!(
            (
                ammonium.atomic_number,
                ammonium.formal_charge,
                ammonium.hydrogens
            ),
            (7, 1, 4)
        );
        assert_eq!(ammonium.degree, 0);
    }

    #[test]
    fn kekule_input_is_aromatised() {
        assert_eq!(graph("C1=CC=CC=C1"), graph("c1ccccc1"));
    }
}
