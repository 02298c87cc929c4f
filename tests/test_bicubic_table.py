"""The whole pipeline (dataset -> MATLAB bicubic LR -> bicubic SR -> uint8 -> PSNR-Y/SSIM-Y, BasicSR
protocol) against the published bicubic table. Tolerance: 0.02 dB and 0.002, as the issue states."""

import pytest

from bench.run.runner import Runner
from bench.run.spec import MethodSpec, RunSpec
from bench.run.store import load_scores

# Published bicubic baselines (PSNR-Y / SSIM-Y), e.g. in the LapSRN / RDN / RCAN tables.
PUBLISHED = {
    ("set5", 2): (33.66, 0.9299), ("set5", 3): (30.39, 0.8682), ("set5", 4): (28.42, 0.8104), ("set5", 8): (24.40, 0.6580),
    ("set14", 2): (30.24, 0.8688), ("set14", 3): (27.55, 0.7742), ("set14", 4): (26.00, 0.7027), ("set14", 8): (23.10, 0.5660),
    ("urban100", 2): (26.88, 0.8403), ("urban100", 3): (24.46, 0.7349), ("urban100", 4): (23.14, 0.6577),
    ("urban100", 8): (20.74, 0.5160),
}
# x8 SSIM on Set14 and Urban100: with the protocol's border of 8 pixels we get 0.5639 and 0.5138,
# 0.0021-0.0022 below the published 0.5660 and 0.5160; with no border shave we get 0.5663 and
# 0.5169, within tolerance. So those two published x8 SSIM figures were computed without the
# shave, while Set5 x8 (0.6581 vs 0.6580) and every PSNR match with it. Kept visible as strict
# expected failures rather than loosening the tolerance.
KNOWN_DEVIATIONS = {("set14", 8, "ssim"), ("urban100", 8, "ssim")}


@pytest.fixture(scope="module")
def table(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("bicubic")
    spec = RunSpec(datasets=("set5", "set14", "urban100"), scales=(2, 3, 4, 8),
                   methods=(MethodSpec("bicubic", "bicubic"),), metrics=("psnr", "ssim"),
                   data_root=str(shared_data))
    Runner(spec, out, echo=lambda s: None, progress=False).run()
    df = load_scores(out)
    assert (df["status"] == "ok").all()
    return df.groupby(["dataset", "scale", "metric"])["value"].mean()


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(PUBLISHED))
@pytest.mark.parametrize("metric", ["psnr", "ssim"])
def test_bicubic_reproduces_published_table(table, key, metric, request):
    if (*key, metric) in KNOWN_DEVIATIONS:
        request.applymarker(pytest.mark.xfail(strict=True, reason="published x8 SSIM was computed without the border shave"))
    expected = PUBLISHED[key][0 if metric == "psnr" else 1]
    ours = table[(key[0], key[1], metric)]
    tol = 0.02 if metric == "psnr" else 0.002
    print(f"{key[0]} x{key[1]} {metric}: ours {ours:.4f}, published {expected}")
    assert abs(ours - expected) <= tol, f"{key} {metric}: ours {ours:.4f}, published {expected}"
