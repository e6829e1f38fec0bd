"""Oracle check for xp-chem: RDKit computes validity, canonical SMILES and MOSES's metrics on the
sample xtask wrote; ours must agree (validity and canonical form on every molecule, metrics
within 1e-3). Usage: check_chem.py WORKDIR (sample.txt, train.txt, reference.txt, ours.json)."""

import json
import math
import sys
from pathlib import Path

import numpy as np
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import AllChem

RDLogger.DisableLog("rdApp.*")


def lines(path):
    return Path(path).read_text().split("\n")[:-1]


def mol(s):
    return Chem.MolFromSmiles(s) if s else None


def canonical(s):
    m = mol(s)
    return Chem.MolToSmiles(m) if m is not None else None


def fp(m):
    return AllChem.GetMorganFingerprintAsBitVect(m, 2, nBits=1024)


def main():
    work = Path(sys.argv[1])
    sample = lines(work / "sample.txt")
    ours = json.loads((work / "ours.json").read_text())
    failures = []
    for i, (s, o) in enumerate(zip(sample, ours["canonical"])):
        c = canonical(s)
        if c != o:
            failures.append(f"line {i + 1} {s!r}: RDKit {c!r}, ours {o!r}")
    valid = [m for m in map(mol, sample) if m is not None]
    can = [Chem.MolToSmiles(m) for m in valid]
    fps = [fp(m) for m in valid]
    train = {c for c in map(canonical, lines(work / "train.txt")) if c is not None}
    ref = [fp(m) for m in map(mol, lines(work / "reference.txt")) if m is not None]
    sims = np.array([DataStructs.BulkTanimotoSimilarity(f, fps) for f in fps])
    expect = {
        "validity": len(valid) / len(sample),
        "unique_at_1k": len(set(can[:1000])) / len(can[:1000]),
        "unique_at_10k": len(set(can[:10000])) / len(can[:10000]),
        "novelty": len(set(can) - train) / len(set(can)),
        "int_div1": 1 - sims.mean(),
        "int_div2": 1 - math.sqrt((sims**2).mean()),
        "snn": float(np.mean([max(DataStructs.BulkTanimotoSimilarity(f, ref)) for f in fps])),
    }
    for key, value in expect.items():
        got = ours["metrics"][key]
        if got is None or abs(got - value) > 1e-3:
            failures.append(f"{key}: RDKit/MOSES {value:.6f}, ours {got}")
    if failures:
        print("\n".join("chem oracle: " + f for f in failures[:40]))
        print(f"chem oracle: {len(failures)} disagreements")
        sys.exit(1)
    n_valid = sum(o is not None for o in ours["canonical"])
    print(f"chem oracle: {len(sample)} SMILES ({n_valid} valid) agree with RDKit {Chem.rdBase.rdkitVersion}; "
          f"metrics within 1e-3: " + ", ".join(f"{k} {v:.4f}" for k, v in expect.items()))


if __name__ == "__main__":
    main()
