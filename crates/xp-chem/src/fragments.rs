//! BRICS fragments (Degen et al., ChemMedChem 2008) as RDKit's `FragmentOnBRICSBonds` makes
//! them, which MOSES's Frag metric counts. cosmolkit has no BRICS, so this is a port: RDKit's
//! atom environments and bond rules matched with cosmolkit's SMARTS engine, and the cut bonds
//! replaced by isotope-labelled dummy atoms.
//!
//! The environments and rules are RDKit's (rdkit/Chem/BRICS.py), Copyright (c) 2009, Novartis
//! Institutes for BioMedical Research Inc., under the BSD license in
//! `assets/BRICS-LICENSE.txt`.

use std::sync::OnceLock;

use cosmolkit::{
    Atom, AtomId, AtomSpec, Bond, BondId, BondSpec, CoordinateBlock, Element, MoleculeBuilder,
    MoleculeProperties, QueryGraph, TopologyBlock,
};

use crate::molecule::{ChemError, Molecule, guarded};

/// RDKit's BRICS atom environments, by label (L2 and L12 have no rule left in RDKit).
const ENVIRONMENTS: [(&str, &str); 18] = [
    ("1", "[C;D3]([#0,#6,#7,#8])(=O)"),
    ("3", "[O;D2]-;!@[#0,#6,#1]"),
    ("4", "[C;!D1;!$(C=*)]-;!@[#6]"),
    (
        "5",
        "[N;!D1;!$(N=*);!$(N-[!#6;!#16;!#0;!#1]);!$([N;R]@[C;R]=O)]",
    ),
    ("6", "[C;D3;!R](=O)-;!@[#0,#6,#7,#8]"),
    ("7a", "[C;D2,D3]-[#6]"),
    ("7b", "[C;D2,D3]-[#6]"),
    ("8", "[C;!R;!D1;!$(C!-*)]"),
    ("9", "[n;+0;$(n(:[c,n,o,s]):[c,n,o,s])]"),
    ("10", "[N;R;$(N(@C(=O))@[C,N,O,S])]"),
    ("11", "[S;D2](-;!@[#0,#6])"),
    ("12", "[S;D4]([#6,#0])(=O)(=O)"),
    ("13", "[C;$(C(-;@[C,N,O,S])-;@[N,O,S])]"),
    ("14", "[c;$(c(:[c,n,o,s]):[n,o,s])]"),
    ("14b", "[c;$(c(:[c,n,o,s]):[n,o,s])]"),
    ("15", "[C;$(C(-;@C)-;@C)]"),
    ("16", "[c;$(c(:c):c)]"),
    ("16b", "[c;$(c(:c):c)]"),
];

/// RDKit's BRICS bond rules: the environments on either side and the bond between them, in
/// RDKit's order.
const RULES: [(&str, &str, &str); 46] = [
    ("1", "3", "-"),
    ("1", "5", "-"),
    ("1", "10", "-"),
    ("3", "4", "-"),
    ("3", "13", "-"),
    ("3", "14", "-"),
    ("3", "15", "-"),
    ("3", "16", "-"),
    ("4", "5", "-"),
    ("4", "11", "-"),
    ("5", "12", "-"),
    ("5", "14", "-"),
    ("5", "16", "-"),
    ("5", "13", "-"),
    ("5", "15", "-"),
    ("6", "13", "-"),
    ("6", "14", "-"),
    ("6", "15", "-"),
    ("6", "16", "-"),
    ("7a", "7b", "="),
    ("8", "9", "-"),
    ("8", "10", "-"),
    ("8", "13", "-"),
    ("8", "14", "-"),
    ("8", "15", "-"),
    ("8", "16", "-"),
    ("9", "13", "-"),
    ("9", "14", "-"),
    ("9", "15", "-"),
    ("9", "16", "-"),
    ("10", "13", "-"),
    ("10", "14", "-"),
    ("10", "15", "-"),
    ("10", "16", "-"),
    ("11", "13", "-"),
    ("11", "14", "-"),
    ("11", "15", "-"),
    ("11", "16", "-"),
    ("13", "14", "-"),
    ("13", "15", "-"),
    ("13", "16", "-"),
    ("14", "14", "-"),
    ("14", "15", "-"),
    ("14", "16", "-"),
    ("15", "16", "-"),
    ("16", "16", "-"),
];

/// One compiled rule: a two-atom SMARTS and the dummy labels of its first and second atom.
struct Rule {
    query: QueryGraph,
    labels: (u16, u16),
}

fn environment(label: &str) -> &'static str {
    ENVIRONMENTS
        .iter()
        .find(|(l, _)| *l == label)
        .map(|(_, smarts)| *smarts)
        .expect("every rule names a defined environment (a unit test)")
}

/// The number in a label: "7a" is dummy label 7.
fn label_number(label: &str) -> u16 {
    label
        .trim_end_matches(char::is_alphabetic)
        .parse()
        .expect("labels are numbers with an optional letter")
}

fn rules() -> &'static [Rule] {
    static RULES_COMPILED: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES_COMPILED.get_or_init(|| {
        RULES
            .iter()
            .map(|(a, b, bond)| {
                let smarts = format!("[$({})]{bond};!@[$({})]", environment(a), environment(b));
                let query = cosmolkit::parse_smarts(&smarts).unwrap_or_else(|e| {
                    panic!("BRICS rule {smarts:?} does not parse: {e} (a unit test)")
                });
                Rule {
                    query,
                    labels: (label_number(a), label_number(b)),
                }
            })
            .collect()
    })
}

impl Molecule {
    /// The canonical SMILES of the molecule's BRICS fragments (RDKit's `FragmentOnBRICSBonds`,
    /// then `MolToSmiles` split at '.'), each cut end marked by a dummy atom labelled with its
    /// environment, as `[16*]c1ccccc1`. A molecule without a BRICS bond is one fragment.
    pub fn brics_fragments(&self) -> Result<Vec<String>, ChemError> {
        let source = &self.inner;
        let topology = source.topology();
        // For each bond: the dummy labels of its begin and end atom, if BRICS cuts it. As
        // RDKit's fragmentOnBonds, the rules are tried from the last to the first and a bond
        // keeps the first rule that matched it.
        let mut cuts: Vec<Option<(u16, u16)>> = vec![None; topology.bonds.len()];
        guarded(|| {
            for rule in rules().iter().rev() {
                for hit in source
                    .substruct_matches(&rule.query)
                    .map_err(|e| e.to_string())?
                {
                    let (first, second) = (hit.atom_mapping[0], hit.atom_mapping[1]);
                    let bond_id = topology
                        .adjacency
                        .neighbors_of(first)
                        .iter()
                        .find(|n| n.atom_index == second)
                        .ok_or("a BRICS match without a bond")?
                        .bond;
                    let bond = &topology.bonds[bond_id.index()];
                    let cut = &mut cuts[bond.id().index()];
                    if cut.is_none() {
                        *cut = Some(if bond.begin().index() == first {
                            rule.labels
                        } else {
                            (rule.labels.1, rule.labels.0)
                        });
                    }
                }
            }
            Ok(())
        })?;
        if cuts.iter().all(Option::is_none) {
            // Still one fragment per component, as MOSES splits RDKit's SMILES at every '.'.
            return Ok(self
                .canonical_smiles()?
                .split('.')
                .map(str::to_owned)
                .collect());
        }
        // Each cut bond is replaced, in its place, by one bond from each end to a new dummy
        // atom: every atom keeps the order of its neighbours, so chirality needs no fixing.
        let fragmented = guarded(|| {
            let mut atoms: Vec<Atom> = topology.atoms.clone();
            let mut bonds: Vec<Bond> = Vec::with_capacity(topology.bonds.len() + 8);
            let dummy = |atoms: &mut Vec<Atom>, label: u16| {
                let id = AtomId::new(atoms.len());
                atoms.push(Atom::from_spec(
                    id,
                    AtomSpec::new(Element::DUMMY).with_isotope(label),
                ));
                id
            };
            for (bond, cut) in topology.bonds.iter().zip(&cuts) {
                match cut {
                    None => {
                        let mut kept = bond.clone();
                        kept.set_id_for_construction(BondId::new(bonds.len()));
                        bonds.push(kept);
                    }
                    Some((begin_label, end_label)) => {
                        for (end, label) in [(bond.begin(), begin_label), (bond.end(), end_label)] {
                            let new_atom = dummy(&mut atoms, *label);
                            let spec = BondSpec::new(end, new_atom, bond.order());
                            bonds.push(Bond::from_spec(BondId::new(bonds.len()), spec));
                        }
                    }
                }
            }
            let topology = TopologyBlock::try_from_parts(
                atoms,
                bonds,
                topology.substance_groups.clone(),
                topology.stereo_groups.clone(),
            )
            .map_err(|e| e.to_string())?;
            MoleculeBuilder::from_parts(
                topology,
                CoordinateBlock::default(),
                MoleculeProperties::default(),
            )
            .build()
            .map_err(|e| e.to_string())
        })?;
        let smiles = Molecule { inner: fragmented }.canonical_smiles()?;
        Ok(smiles.split('.').map(str::to_owned).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_molecule_of_several_components_gives_one_fragment_each_even_without_a_cut() {
        // RDKit + MOSES: MolToSmiles(FragmentOnBRICSBonds(m)).split(".").
        let fragments = |s: &str| Molecule::parse(s).unwrap().brics_fragments().unwrap();
        assert_eq!(fragments("[Na+].[Cl-]"), ["[Cl-]", "[Na+]"]);
        assert_eq!(fragments("CC"), ["CC"]);
    }

    #[test]
    fn every_rule_compiles() {
        assert_eq!(rules().len(), RULES.len());
        assert_eq!(label_number("7a"), 7);
        assert_eq!(label_number("16"), 16);
    }
}
