"""Stage 6 — pruning, inference & deployment: the compression step (`dvc repro compress`).

Inputs: `paths.teacher/`, `paths.encoded/tokenized`.
Method: every compressor of `deploy.compress.methods` (qlife.methods.compressors: an MPO by TT-SVD, an MPO after
a disentangler circuit, a truncated SVD, FFN pruning to the same parameter count) at each ratio of dense to
compressed parameters on the same target layers, each with the same layer-wise fit on calibration tokens and the
same recovery fine-tune; scored on the test split before and after recovery. The disentanglers are exported as
OpenQASM 3 and checked against the torch layer by qiskit's Statevector.
Outputs: `paths.compressed/` (`deploy.compress.apply`'s method and ratio, with `circuits/*.qasm`; the better of
before and after its recovery), `reports/plots/compress.json` (quality against parameters).
Report: per ratio and method: quality, parameters, bytes, fit error, circuit resources, and the ratio's verdict;
`verdict`: at `deploy.compress.apply.ratio`, MPO + disentanglers against plain MPO (its twin) and the best of SVD
and FFN pruning, paired over the test documents (None when either MPO method is not run); `decision.candidates`:
the compressed teacher, for `qlife.promote`.
Params: `deploy.compress`; for its `prune` method `deploy.apply.method`'s selector (`deploy.ffn`,
`deploy.objective`, `deploy.penalty_scale`, `deploy.calib_docs`, `deploy.seed`); `quality`; `train` (healing).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from qlife.deploy_compress import cannot_compress, compress_all, save_compressed
from qlife.io import atomic_path, write_json
from qlife.ledger import measure
from qlife.methods.pruning import count_parameters
from qlife.params import Params
from qlife.stage import Report
from qlife.stage import main as stage_main
from qlife.teacher_ops import load


def skipped(params: Params, why: str) -> Report:
    """No compressed model: its folder holds only the reason (DVC's declared output exists), nothing is offered."""
    with atomic_path(params.paths.compressed, is_dir=True) as tmp:
        (tmp / "SKIPPED").write_text(why + "\n")
    return {"summary": {"compressed": "skipped"}, "methods": {}, "compression": {"skipped": why}, "verdict": None,
            "decision": {"candidates": {}, "why": why}}


def run(params: Params) -> Report:
    cp = params.deploy.compress
    if not cp.enabled:
        return skipped(params, "deploy.compress.enabled is false")
    wb = load(params, "compress")
    unsupported = cannot_compress(wb.teacher, cp.targets)
    if unsupported:  # a layout the compressor cannot replace (GPT-2's Conv1D): said in the report, not fatal
        return skipped(params, unsupported)
    test = wb.split("test")
    teacher_parameters = count_parameters(wb.teacher)
    with measure(params.ledger) as cost, tempfile.TemporaryDirectory() as scratch:
        compression, plot, model = compress_all(wb, test, Path(scratch) / "circuits")
        write_json(Path(params.paths.reports) / "plots" / "compress.json", plot)
        row = compression["ratios"][f"{cp.apply.ratio:g}"]["methods"][cp.apply.method]
        applied = {**{k: row[k] for k in ("quality", "metric", "accuracy", "macro_f1", "parameters")},
                   **save_compressed(wb, model, Path(scratch) / "circuits", test[0][:64]),
                   "applied": f"{cp.apply.method}_x{cp.apply.ratio:g}"}
    metric = params.quality.name
    return {"summary": {f"compress_x{r}_{m}_{metric}": row["quality"]
                        for r, rep in compression["ratios"].items()
                        for m, row in rep["methods"].items() if "quality" in row}
            | {"compressed_param_ratio": applied["parameters"] / teacher_parameters},
            "methods": {"compressed": applied},
            "verdict": compression.pop("verdict"),
            "compression": compression,
            "decision": {"applied": applied["applied"], "candidates": {"compressed_teacher": {
                "kind": "classifier", "artifacts": {"model": params.paths.compressed}, "backend": "torch-cpu",
                **{k: applied[k] for k in ("quality", "metric", "accuracy", "macro_f1")}}}},
            "cost": {"compress": cost.as_dict()}}


def main() -> None:
    stage_main("compress", run)


if __name__ == "__main__":
    main()
