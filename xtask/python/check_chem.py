"""Oracle check for xp-chem: RDKit computes validity, canonical SMILES and MOSES's metrics on the
sample xtask wrote; ours must agree (validity, canonical form and molecular graph on every
molecule, metrics within 1e-3). Usage: check_chem.py WORKDIR FILTERS_DIR (WORKDIR: sample.txt, train.txt,
reference.txt, ours.json; FILTERS_DIR: MOSES's mcf.csv and wehi_pains.csv).

Frag, Scaf and Filters follow moses/metrics/utils.py (molsets 0.3.1): fragmenter
(FragmentOnBRICSBonds), compute_scaffold with min_rings=2, mol_passes_filters, cos_similarity."""

import contextlib
import io
import json
import math
import sys
from pathlib import Path

from collections import Counter

import numpy as np
import pandas as pd
from rdkit import Chem, DataStructs, RDLogger, rdBase
from rdkit.Chem import AllChem
from rdkit.Chem.Scaffolds import MurckoScaffold

RDLogger.DisableLog("rdApp.*")


def lines(path):
    return Path(path).read_text().split("\n")[:-1]


def mol(s):
    return Chem.MolFromSmiles(s) if s else None


# RDKit's own words for why a SMILES is invalid, and the kind xp-chem files them under.
RDKIT_KINDS = [
    ("unclosed ring", "unclosed_ring"),
    ("SMILES Parse Error", "syntax"),
    ("Explicit valence", "valence"),
    ("Can't kekulize", "aromaticity"),
    ("marked aromatic", "aromaticity"),
]


def invalid_kind(s):
    """The kind of mistake RDKit reports first for `s`, from the message it logs; None if valid."""
    if not s:
        return "empty"
    rdBase.LogToPythonStderr()
    RDLogger.EnableLog("rdApp.error")
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            m = Chem.MolFromSmiles(s)
    finally:
        RDLogger.DisableLog("rdApp.*")
    if m is not None:
        return None
    message = said.getvalue()
    return next((kind for key, kind in RDKIT_KINDS if key in message), "other: " + message.strip())


def canonical(s):
    m = mol(s)
    return Chem.MolToSmiles(m) if m is not None else None


def fp(m):
    return AllChem.GetMorganFingerprintAsBitVect(m, 2, nBits=1024)


def compute_scaffold(m, min_rings=2):
    try:
        scaffold = MurckoScaffold.GetScaffoldForMol(m)
    except (ValueError, RuntimeError):
        return None
    n_rings = scaffold.GetRingInfo().NumRings()
    smiles = Chem.MolToSmiles(scaffold)
    if smiles == "" or n_rings < min_rings:
        return None
    return smiles


def fragmenter(m):
    return Chem.MolToSmiles(AllChem.FragmentOnBRICSBonds(m)).split(".")


def fragment_counts(mols):
    counts = Counter()
    for m in mols:
        counts.update(fragmenter(m))
    return counts


def load_filters(folder):
    mcf = pd.read_csv(folder / "mcf.csv")
    pains = pd.read_csv(folder / "wehi_pains.csv", names=["smarts", "names"])
    return [Chem.MolFromSmarts(x) for x in pd.concat([mcf, pains])["smarts"].values]


def passes_filters(m, filters, allowed=("C", "N", "S", "O", "F", "Cl", "Br", "H")):
    ring_info = m.GetRingInfo()
    if ring_info.NumRings() != 0 and any(len(x) >= 8 for x in ring_info.AtomRings()):
        return False
    h_mol = Chem.AddHs(m)
    if any(atom.GetFormalCharge() != 0 for atom in m.GetAtoms()):
        return False
    if any(atom.GetSymbol() not in allowed for atom in m.GetAtoms()):
        return False
    if any(h_mol.HasSubstructMatch(smarts) for smarts in filters):
        return False
    smiles = Chem.MolToSmiles(m, isomericSmiles=False)
    if smiles is None or len(smiles) == 0:
        return False
    return Chem.MolFromSmiles(smiles) is not None


def bond_kind(b):
    """xp-chem's BondKind of an RDKit bond."""
    if b.GetIsAromatic():
        return "Aromatic"
    return {Chem.BondType.SINGLE: "Single", Chem.BondType.DOUBLE: "Double",
            Chem.BondType.TRIPLE: "Triple", Chem.BondType.AROMATIC: "Aromatic"}.get(b.GetBondType(), "Other")


def cos_similarity(ref_counts, gen_counts):
    if len(ref_counts) == 0 or len(gen_counts) == 0:
        return None
    keys = sorted(set(ref_counts) | set(gen_counts))
    ref = np.array([ref_counts.get(k, 0) for k in keys], dtype=float)
    gen = np.array([gen_counts.get(k, 0) for k in keys], dtype=float)
    return float(ref @ gen / np.sqrt((ref @ ref) * (gen @ gen)))


def main():
    work = Path(sys.argv[1])
    filters = load_filters(Path(sys.argv[2]))
    sample = lines(work / "sample.txt")
    ours = json.loads((work / "ours.json").read_text())
    failures = []
    for i, (s, o) in enumerate(zip(sample, ours["canonical"])):
        c = canonical(s)
        if c != o:
            failures.append(f"line {i + 1} {s!r}: RDKit {c!r}, ours {o!r}")
    kinds = Counter()
    for i, (s, o) in enumerate(zip(sample, ours["invalid"])):
        expect = invalid_kind(s)
        got = o[0] if o is not None else None
        kinds[expect] += 1
        if got != expect:
            failures.append(f"line {i + 1} {s!r}: RDKit reports {expect!r}, ours {got!r} ({o[1] if o else 'valid'})")
    valid = [m for m in map(mol, sample) if m is not None]
    can = [Chem.MolToSmiles(m) for m in valid]
    fps = [fp(m) for m in valid]
    train = {c for c in map(canonical, lines(work / "train.txt")) if c is not None}
    ref_mols = [m for m in map(mol, lines(work / "reference.txt")) if m is not None]
    ref = [fp(m) for m in ref_mols]
    # MOSES scores molecules re-read from their canonical SMILES.
    gen_mols = [Chem.MolFromSmiles(c) for c in can]
    scaffolds = lambda mols: Counter(s for s in map(compute_scaffold, mols) if s is not None)
    passes = [passes_filters(m, filters) for m in gen_mols]
    if len(ours["per_molecule"]) != len(valid):
        failures.append(f"{len(ours['per_molecule'])} molecules described, RDKit has {len(valid)} valid")
    for s, m, o in zip([s for s in sample if mol(s) is not None], valid, ours["per_molecule"]):
        scaffold = MurckoScaffold.GetScaffoldForMol(m)
        expect = {
            "atoms": [[a.GetAtomicNum(), a.GetFormalCharge(), a.GetIsAromatic(), a.GetTotalNumHs(), a.GetDegree()]
                      for a in m.GetAtoms()],
            "bonds": [[b.GetBeginAtomIdx(), b.GetEndAtomIdx(), bond_kind(b)] for b in m.GetBonds()],
            "fragments": sorted(fragmenter(m)),
            "scaffold": Chem.MolToSmiles(scaffold),
            "scaffold_rings": scaffold.GetRingInfo().NumRings(),
            "passes_filters": passes_filters(m, filters),
        }
        for key, value in expect.items():
            if o[key] != value:
                failures.append(f"{s!r} {key}: RDKit/MOSES {value!r}, ours {o[key]!r}")
    sims = np.array([DataStructs.BulkTanimotoSimilarity(f, fps) for f in fps])
    expect = {
        "validity": len(valid) / len(sample),
        "unique_at_1k": len(set(can[:1000])) / len(can[:1000]),
        "unique_at_10k": len(set(can[:10000])) / len(can[:10000]),
        "novelty": len(set(can) - train) / len(set(can)),
        "int_div1": 1 - sims.mean(),
        "int_div2": 1 - math.sqrt((sims**2).mean()),
        "snn": float(np.mean([max(DataStructs.BulkTanimotoSimilarity(f, ref)) for f in fps])),
        "frag": cos_similarity(fragment_counts(ref_mols), fragment_counts(gen_mols)),
        "scaf": cos_similarity(scaffolds(ref_mols), scaffolds(gen_mols)),
        "filters": sum(passes) / len(passes),
    }
    for key, value in expect.items():
        got = ours["metrics"][key]
        if value is None or got is None or abs(got - value) > 1e-3:
            failures.append(f"{key}: RDKit/MOSES {value:.6f}, ours {got}")
    if failures:
        print("\n".join("chem oracle: " + f for f in failures[:40]))
        print(f"chem oracle: {len(failures)} disagreements")
        sys.exit(1)
    n_valid = sum(o is not None for o in ours["canonical"])
    n_invalid = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in kinds.most_common() if k is not None)
    print(f"chem oracle: {len(sample)} SMILES ({n_valid} valid, {len(passes) - sum(passes)} failing "
          f"MOSES's filters; invalid: {n_invalid}) agree with RDKit {Chem.rdBase.rdkitVersion} (canonical SMILES, "
          f"the kind of mistake of each invalid one, atoms and bonds, BRICS fragments, "
          f"Murcko scaffolds, filter verdicts); "
          f"metrics within 1e-3: " + ", ".join(f"{k} {v:.4f}" for k, v in expect.items()))


if __name__ == "__main__":
    main()
