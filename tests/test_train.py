"""The training loop (`bench.train`): data from train/ only, determinism, resume equality, EMA,
validation, the checkpoint record, and running a checkpoint in the harness (tiny networks)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from iqa.errors import SrbenchError
from tests.helpers import run_killed_at, tiny_rrdn, tiny_train_root, whole_and_resumed


@pytest.fixture
def data_root(tmp_path) -> Path:
    return tiny_train_root(tmp_path / "data", 96, 64)


def cfg_and_opts(tmp_path, **kw):
    from bench.train.loop import TrainConfig
    from bench.train.rrdn_x16 import Options

    cfg = TrainConfig(scale=16, patch=32, batch=2, steps=4, log_every=1, ckpt_every=2, val_images=2, val_crop=64,
                      val_metrics=("psnr",), ema=0.9, device="cpu", **kw)
    return cfg, Options(base_asset="", base_path=str(tiny_rrdn(tmp_path / "base_x8.safetensors", scale=8)), channels=4,
                        blocks=1, lr=1e-2)


def train(tmp_path, out, data_root, cfg, opts, **kw):
    from bench.train.loop import train as run
    from bench.train.rrdn_x16 import RRDNx16

    return run(RRDNx16, cfg, opts, tmp_path / out, data_root=data_root, echo=lambda _: None, progress=False, **kw)


def stage_weights(path: Path) -> dict[str, torch.Tensor]:
    from sr_methods.trained import read_checkpoint

    return read_checkpoint(path)[0]


def test_patch_sampler_is_seeded_per_batch_and_lr_is_the_degradation(data_root):
    from bench.run.degradations import derive_seed, parse_degradation
    from bench.train.data import PatchSampler

    files = sorted((data_root / "train" / "t91").glob("*.png"))
    s = PatchSampler(files, patch=32, batch=3, degradation="x4", seed=5)
    hr, lr = s(7)
    assert hr.shape == (3, 3, 32, 32) and lr.shape == (3, 3, 8, 8)
    hr2, lr2 = PatchSampler(files, patch=32, batch=3, degradation="x4", seed=5)(7)
    assert torch.equal(hr, hr2) and torch.equal(lr, lr2)
    assert not torch.equal(s(8)[0], hr)
    want = parse_degradation("x4").apply(hr[1:2], seed=derive_seed(5, "train:7:1", "x4"))[1]
    assert torch.equal(lr[1:2], (want.clamp(0, 1) * 255).round() / 255)
    with pytest.raises(SrbenchError, match="multiple of the scale"):
        PatchSampler(files, patch=30, batch=1, degradation="x4")


def test_training_refuses_a_test_image(data_root):
    from bench.train.data import training_images

    (data_root / "set5" / "HR").mkdir(parents=True)
    leak = data_root / "set5" / "HR" / "baby.png"
    leak.write_bytes((data_root / "train" / "t91" / "im1.png").read_bytes())
    with pytest.raises(SrbenchError, match="is the test image .*baby.png"):
        training_images(data_root, ("t91",))


def test_training_is_deterministic_and_records_what_it_did(tmp_path, data_root):
    cfg, opts = cfg_and_opts(tmp_path)
    a = train(tmp_path, "a", data_root, cfg, opts)
    b = train(tmp_path, "b", data_root, cfg, opts)
    wa, wb = stage_weights(a), stage_weights(b)
    assert set(wa) and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert all(not k.startswith("base.") and v.dtype == torch.float16 for k, v in wa.items())  # only the new layers
    from sr_methods.trained import read_checkpoint

    _, rec, _ = read_checkpoint(a)
    assert rec["method"] == "rrdn-x16" and rec["scale"] == 16 and rec["arch"] == "rrdn-x2-stage"
    assert rec["base"]["sha256"] and len(rec["images"]) == 3 and rec["parent"] is None
    assert rec["config"]["steps"] == 4 and rec["config"]["method"]["channels"] == 4
    assert rec["validation"]["set"] == "kodak24" and rec["validation"]["val_psnr"] > 5
    log = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "l1" in r] == [1, 2, 3, 4] and "val_psnr" in log[-1]


def test_a_killed_training_resumes_to_the_same_weights(tmp_path, data_root, monkeypatch):
    from bench.train.rrdn_x16 import RRDNx16

    cfg, opts = cfg_and_opts(tmp_path)
    whole, resumed = map(stage_weights, whole_and_resumed(
        monkeypatch, RRDNx16, lambda name: train(tmp_path, name, data_root, cfg, opts), tmp_path))
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    with pytest.raises(SrbenchError, match="another config"):
        train(tmp_path, "killed", data_root, replace(cfg, seed=1), opts)


def test_ema_is_the_running_average_of_the_weights():
    from bench.train.loop import EMA

    net = torch.nn.Linear(2, 1)
    ema = EMA(net, 0.5)
    w0 = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(2.0)
    ema.update(net)
    assert torch.allclose(ema.state["weight"], w0 + 1.0)


def test_checkpoint_runs_in_the_harness_and_its_stage_starts_as_bicubic(tmp_path, data_root):
    """With zero steps the stage is bicubic x2 of the base (zero-initialised tail): the checkpoint
    equals the cascade base + bicubic x2 (float, before rounding), an independent computation."""
    import sr_methods
    from sr_methods.rrdn import load_rrdn

    cfg, opts = cfg_and_opts(tmp_path)
    ckpt = train(tmp_path, "zero", data_root, replace(cfg, steps=0), opts, validate=False)
    m = sr_methods.create_method(f"rrdn-x16:{ckpt}")
    assert m.scales == (16,) and sr_methods.method_info(f"rrdn-x16:{ckpt}")["kind"] == "trained"
    lr = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(1))
    base, _, _ = load_rrdn(opts.base_path)
    want = torch.nn.functional.interpolate(base(lr).clamp(0, 1), scale_factor=2, mode="bicubic",
                                           align_corners=False).clamp(0, 1)
    assert torch.allclose(m.upscale(lr, 16), want, atol=1e-6)
    with pytest.raises(SrbenchError, match="is a 'rrdn-x16' checkpoint, not 'sfd-sr-vgg16'"):
        sr_methods.method_info(f"sfd-sr-vgg16:{ckpt}")
    # in a run, under its method name
    from bench.run.runner import Runner
    from bench.run.spec import MethodSpec, RunSpec
    from bench.run.store import load_scores

    s = RunSpec(datasets=("demo",), scales=(16,), metrics=("psnr",), limit=1,
                methods=(MethodSpec(f"rrdn-x16:{ckpt}", "rrdn-x16"),))
    Runner(s, tmp_path / "run", echo=lambda _: None, progress=False).run()
    df = load_scores(tmp_path / "run")
    assert list(df["status"]) == ["ok"] and np.isfinite(df["value"]).all()


def test_cli_train_config_errors_are_one_line(tmp_path, capsys):
    from bench.cli import main

    bad = tmp_path / "c.toml"
    bad.write_text('preset = "cpu"\npatchh = 3\n')
    assert main(["train", "rrdn-x16", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "unknown keys ['patchh']" in capsys.readouterr().err
    assert main(["train", "rrdn-x17", "--out", str(tmp_path / "o")]) == 2
    assert "did you mean 'rrdn-x16'" in capsys.readouterr().err


def test_shipped_checkpoints_are_what_the_catalogue_says():
    """Each checkpoint in sr_methods/data: the catalogue's sha256, its own method name and scale, a
    validation record, trained on train/ images only; each issue's files within its budget (issue
    12: SFD-SR and rrdn-x16 together 60 MB; issue 14: each DePLSR checkpoint 20 MB; issue 15: the
    CLIP-SR checkpoints, ablations and aligner together 20 MB). The CLIP-SR aligner is no SR method:
    its file is the one `SHIPPED_ALIGNER` names, validated on the held-out captioned images."""
    import sr_methods
    from iqa.assets import sha256_file
    from sr_methods.clipsr.catalogue import SHIPPED_ALIGNER
    from sr_methods.trained import read_checkpoint

    folder = Path(sr_methods.__file__).parent / "data"
    files = sorted(folder.glob("*.safetensors"))
    assert files
    assert sum(p.stat().st_size for p in files if p.name.startswith(("sfd_sr_", "rrdn_x16"))) < 60e6
    assert all(p.stat().st_size < 20e6 for p in files if p.name.startswith("deplsr_"))
    assert sum(p.stat().st_size for p in files if p.name.startswith("clip_sr_")) < 20e6
    aligner = folder / SHIPPED_ALIGNER[0]
    _, rec, sha = read_checkpoint(aligner)
    assert sha == SHIPPED_ALIGNER[1] and rec["method"] == "clip-sr-align" and rec["validation"]["val_heldout_images"] > 0
    assert all(path.startswith(("train/coco/", "train/celeba_mm/")) for path, _ in rec["images"] + rec["held_out"])
    files.remove(aligner)
    shipped = {sr_methods.method_info(n).get("file"): n for n in sr_methods.list_methods()
               if sr_methods.method_info(n).get("kind") == "trained"}
    for p in files:
        name = shipped[p.name]
        info = sr_methods.method_info(name)
        _, rec, sha = read_checkpoint(p)
        assert sha == sha256_file(p) == info["sha256"]
        assert rec["method"] == info.get("recipe", name) and tuple(info["scales"]) == (rec["scale"],)
        assert rec["validation"]["set"] == "kodak24" and rec["validation"]["val_psnr"] > 0
        assert rec["images"] and all(path.startswith("train/") and "kodak24" not in path for path, _ in rec["images"])


def test_shipped_rrdn_x16_needs_its_base_asset_and_says_so():
    import sr_methods
    from iqa.errors import MissingAssetError

    with pytest.raises(MissingAssetError, match="esrgan-thick-x8"):
        sr_methods.create_method("rrdn-x16")


def test_shipped_clip_sr_needs_the_minilm_assets_and_says_so():
    import sr_methods
    from iqa.errors import MissingAssetError

    with pytest.raises(MissingAssetError, match="srbench assets fetch minilm-l6-v2"):
        sr_methods.create_method("clip-sr-minilm-vgg16-cap45-x4")
    assert sr_methods.method_info("clip-sr-minilm-vgg16-cap45-x4")["text_guided"] is True


@pytest.mark.gpu
def test_training_on_cuda_with_bfloat16_resumes_and_runs(tmp_path, data_root, monkeypatch):
    """On CUDA (bf16 autocast): a run killed after its checkpoint resumes to the weights of an
    uninterrupted run (cuDNN may pick other kernels: within 1e-3), and the checkpoint runs on CUDA."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    import sr_methods
    from bench.train.rrdn_x16 import RRDNx16

    cfg, opts = cfg_and_opts(tmp_path)
    cfg = replace(cfg, device="cuda", amp=True)
    whole = stage_weights(train(tmp_path, "whole", data_root, cfg, opts))
    run_killed_at(monkeypatch, RRDNx16, 3, lambda: train(tmp_path, "killed", data_root, cfg, opts))
    resumed = stage_weights(train(tmp_path, "killed", data_root, cfg, opts))
    assert all(torch.allclose(whole[k].float(), resumed[k].float(), atol=1e-3) for k in whole)
    m = sr_methods.create_method(f"rrdn-x16:{tmp_path / 'whole' / 'model.safetensors'}", device="cuda")
    assert m.upscale(torch.rand(1, 3, 4, 5, device="cuda"), 16).shape == (1, 3, 64, 80)
