"""Every file a metric or method loads is verified (against its known sha256), hashed once per
process and recorded in ``provenance()`` (issue 11, "verified weights everywhere"); a huge
checkpoint is refused with one line or memory-mapped, never read whole (issue 11, section 4).

All offline: the real ImageNet backbones are stood in for by random weights whose hashes replace
the known ones; the LPIPS/DISTS heads are the real files of the installed packages, copied before
they are altered.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import iqa
from bench.run.runner import sha256_values  # what the run fingerprints: every "sha256" of a provenance
from iqa import assets as A
from iqa import weights as W
from iqa.errors import MissingAssetError, SrbenchError
from sr_methods import create_method
from tests.helpers import tiny_spandrel_checkpoint

GiB = 2**30


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No real weights anywhere; a fresh asset cache; an empty hash cache (a new process)."""
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "srbench_weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(A.MAX_WEIGHTS_ENV, raising=False)
    A.clear_hash_cache()
    yield
    A.clear_hash_cache()


@pytest.fixture
def hashed(monkeypatch) -> Counter:
    """How often each file is read for its sha256."""
    calls: Counter = Counter()
    real = A.sha256_file

    def counting(path, *args, **kwargs):
        calls[str(Path(path).resolve())] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(A, "sha256_file", counting)
    return calls


def pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 64, 64, generator=g)
    x = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    return iqa.quantize_uint8(x), iqa.quantize_uint8(y)


def backbone_asset(arch: str, monkeypatch, seed: int = 0) -> Path:
    """Random ``arch`` features written where `srbench assets fetch ARCH` puts the converted file,
    with the asset's pinned sha256 replaced by theirs."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    net = W.alexnet_features() if arch == "alexnet" else W.vgg16_features()
    path = A.ASSETS.path(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    monkeypatch.setitem(A.ASSETS._assets, arch, replace(A.ASSETS.get(arch), sha256=A.sha256_file(path)))
    return path


def alter_one_byte(path: Path, offset: int | None = None) -> None:
    """Flip one byte (by default the last: tensor data, the file still loads) and move the mtime
    on, as a later edit would."""
    data = bytearray(path.read_bytes())
    i = len(data) - 1 if offset is None else offset
    data[i] ^= 0x01
    st = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg.strip() == msg
    return msg


# --- LPIPS: the finding of the issue ---------------------------------------------------------------

def test_altered_lpips_alexnet_is_a_one_line_error_not_a_different_score(monkeypatch):
    path = backbone_asset("alexnet", monkeypatch)
    expected = A.ASSETS.get("alexnet").sha256
    x, y = pair()
    m = iqa.create_metric("lpips")
    assert torch.isfinite(m(x, y)).all()
    alter_one_byte(path)  # a float in the last tensor: the file still loads, and would score differently
    with pytest.raises(MissingAssetError) as e:  # missing *verified* file: `srbench run` may fetch it again
        iqa.create_metric("lpips")
    msg = one_line(e)
    assert msg.startswith(f"sha256 mismatch for {path}: expected {expected}, got {A.sha256_file(path)}")
    assert "srbench assets fetch alexnet --force" in msg


def test_altered_lpips_linear_layers_are_refused(monkeypatch, tmp_path):
    original = W.package_file("lpips", "weights/v0.1/alex.pth")
    copy = tmp_path / "lpips" / "alex.pth"
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    monkeypatch.setattr(W, "package_file", lambda package, relative: copy)
    backbone_asset("alexnet", monkeypatch)
    prov = iqa.create_metric("lpips").provenance()
    assert prov["files"]["lin"] == {"path": str(copy), "verified": True,
                                    "sha256": W.PACKAGE_SHA256[("lpips", "weights/v0.1/alex.pth")]}
    alter_one_byte(copy, offset=copy.stat().st_size // 2)
    with pytest.raises(SrbenchError) as e:
        iqa.create_metric("lpips")
    msg = one_line(e)
    lin_sha = W.PACKAGE_SHA256[("lpips", "weights/v0.1/alex.pth")]
    assert msg.startswith(f"sha256 mismatch for {copy}: expected {lin_sha}, got ")
    assert A.sha256_file(copy) in msg and "pip install --force-reinstall --no-deps lpips" in msg


def shipped(package: str, relative: str) -> Path:
    try:
        return W.package_file(package, relative)
    except MissingAssetError:
        import sys

        return Path(sys.prefix) / relative  # DISTS_pytorch also installs a copy there


def test_known_hashes_of_the_shipped_heads():
    """The pinned hashes are those of the installed packages' files (PerceptualSimilarity's
    v0.1 alex.pth/vgg.pth, DISTS_pytorch's weights.pt)."""
    for (package, relative), sha in W.PACKAGE_SHA256.items():
        assert A.sha256_file(shipped(package, relative)) == sha, (package, relative)
    for arch, sha in W.TORCHVISION_SHA256.items():
        assert sha.startswith(W.BACKBONES[arch].filename.rsplit("-", 1)[1][:8])  # torchvision's name rule


def test_torchvision_file_found_by_name_is_verified(tmp_path):
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in W.alexnet_features().state_dict().items()},
               hub / W.BACKBONES["alexnet"].filename)
    with pytest.raises(SrbenchError) as e:
        iqa.create_metric("lpips")
    msg = one_line(e)
    assert f"expected {W.TORCHVISION_SHA256['alexnet']}" in msg and W.BACKBONES["alexnet"].url in msg
    assert "backbone_weights=PATH" in msg  # how to use other weights on purpose


def test_lpips_hashes_each_file_once_per_process(monkeypatch, hashed):
    path = backbone_asset("alexnet", monkeypatch)
    hashed.clear()  # backbone_asset hashed it to pin it
    lin = W.package_file("lpips", "weights/v0.1/alex.pth").resolve()
    x, y = pair()
    first = iqa.create_metric("lpips")
    second = iqa.create_metric("lpips")
    for _ in range(5):
        first(x, y)
        second(x, y)
    assert hashed[str(path.resolve())] == 1 and hashed[str(lin)] == 1
    assert first.provenance() == second.provenance()


def test_a_replaced_file_is_hashed_again(tmp_path, hashed):
    f = tmp_path / "w.bin"
    f.write_bytes(b"a")
    assert A.file_sha256(f) == A.file_sha256(f) == A.sha256_bytes(b"a")
    new = tmp_path / "new.bin"
    new.write_bytes(b"b")
    os.replace(new, f)  # same size, maybe the same mtime: another inode
    assert A.file_sha256(f) == A.sha256_bytes(b"b")
    assert hashed[str(f.resolve())] == 2


# --- provenance of every file-loading metric ---------------------------------------------------------

def test_lpips_and_dists_provenance_records_each_file(monkeypatch, tmp_path):
    alex = backbone_asset("alexnet", monkeypatch)
    vgg = backbone_asset("vgg16", monkeypatch, seed=1)
    lpips = iqa.create_metric("lpips").provenance()["files"]
    assert lpips["backbone"] == {"path": str(alex.resolve()), "sha256": A.sha256_file(alex), "verified": True}
    assert lpips["lin"]["sha256"] == W.PACKAGE_SHA256[("lpips", "weights/v0.1/alex.pth")]
    assert sha256_values(iqa.create_metric("lpips-vgg").provenance()) == sorted(
        [A.sha256_file(vgg), W.PACKAGE_SHA256[("lpips", "weights/v0.1/vgg.pth")]])
    dists = iqa.create_metric("dists").provenance()["files"]
    assert dists["backbone"]["sha256"] == A.sha256_file(vgg) and dists["backbone"]["verified"]
    assert dists["alpha_beta"]["sha256"] == W.PACKAGE_SHA256[("DISTS_pytorch", "weights.pt")]
    # a file given by path is the user's choice: recorded (so it is fingerprinted), not enforced
    mine = tmp_path / "my_alexnet.pth"
    torch.manual_seed(3)
    torch.save(W.alexnet_features().state_dict(), mine)
    rec = iqa.create_metric("lpips", backbone_weights=mine).provenance()["files"]["backbone"]
    assert rec == {"path": str(mine.resolve()), "sha256": A.sha256_file(mine), "verified": False}
    # objects given in code have no file to record
    given = iqa.create_metric("lpips", backbone=W.alexnet_features()).provenance()["files"]["backbone"]
    assert given["sha256"] is None and given["given"] == "object"


def test_altered_dists_weights_are_refused(monkeypatch, tmp_path):
    backbone_asset("vgg16", monkeypatch)
    copy = tmp_path / "weights.pt"
    shutil.copyfile(shipped("DISTS_pytorch", "weights.pt"), copy)
    monkeypatch.setattr(W, "package_file", lambda package, relative: copy)
    assert iqa.create_metric("dists").provenance()["files"]["alpha_beta"]["verified"]
    alter_one_byte(copy, offset=copy.stat().st_size // 2)
    with pytest.raises(SrbenchError, match=r"^sha256 mismatch for .*weights\.pt: expected f5e65c96") as e:
        iqa.create_metric("dists")
    assert "DISTS_pytorch" in one_line(e)


def test_niqe_and_brisque_record_their_files(tmp_path, hashed):
    from tests.test_niqe import synthetic_params

    params = synthetic_params(tmp_path / "p.npz")
    prov = iqa.create_metric("niqe", params=params).provenance()
    assert sha256_values(prov) == [A.sha256_bytes(params.read_bytes())] and prov["files"]["params"]["verified"] is False
    iqa.create_metric("niqe", params=params)
    assert hashed[str(params.resolve())] == 1

    from iqa.nr_baselines import convert_brisque_asset
    from tests.test_nr_baselines import tiny_libsvm_model, tiny_ranges

    (tmp_path / "allmodel").write_text(tiny_libsvm_model(2))
    (tmp_path / "allrange").write_text("x\n-1 1\n" + "".join(f"{k} {a} {b}\n" for k, (a, b) in
                                                             enumerate(tiny_ranges()[1:], start=1)))
    model = convert_brisque_asset([tmp_path / "allmodel", tmp_path / "allrange"], tmp_path / "m.json")
    assert sha256_values(iqa.create_metric("brisque", model=model).provenance()) == [A.sha256_file(model)]


def test_niqe_asset_is_verified_and_recorded(tmp_path, monkeypatch):
    from tests.test_niqe import synthetic_params

    target = A.ASSETS.path("niqe-pris-params")
    target.parent.mkdir(parents=True, exist_ok=True)
    synthetic_params(tmp_path / "p.npz").replace(target)
    monkeypatch.setitem(A.ASSETS._assets, "niqe-pris-params",
                        replace(A.ASSETS.get("niqe-pris-params"), sha256=A.sha256_file(target)))
    rec = iqa.create_metric("niqe").provenance()["files"]["params"]
    assert rec == {"path": str(target.resolve()), "sha256": A.sha256_file(target), "verified": True}
    alter_one_byte(target)
    with pytest.raises(MissingAssetError) as e:
        iqa.create_metric("niqe")
    assert "corrupt (sha256" in one_line(e) and "srbench assets fetch niqe-pris-params --force" in str(e.value)


def test_clipiqa_provenance_is_a_method_with_the_weights_hash(tmp_path):
    from tests.helpers import tiny_clip

    cfg, weights = tiny_clip(tmp_path / "clip")
    m = iqa.create_metric("clipiqa", clip=str(cfg), pretrained=None, weights=str(weights))
    prov = m.provenance()  # the runner calls it: it was shadowed by a dict attribute
    assert sha256_values(prov) == [A.sha256_file(weights)] and prov["weights"] == str(weights)


def test_vgg16_semantic_backbone_is_verified_once(tmp_path, monkeypatch, hashed):
    from iqa.semantic import VGG16Backbone

    env = tmp_path / "srbench_weights"
    env.mkdir()
    found = env / W.BACKBONES["vgg16"].filename
    torch.manual_seed(0)
    torch.save({f"features.{k}": v for k, v in W.vgg16_features().state_dict().items()}, found)
    with pytest.raises(SrbenchError, match=f"sha256 mismatch for {found}: expected {W.TORCHVISION_SHA256['vgg16']}"):
        VGG16Backbone()
    digest = A.sha256_file(found)
    monkeypatch.setitem(W.TORCHVISION_SHA256, "vgg16", digest)
    A.clear_hash_cache()
    hashed.clear()
    bb = VGG16Backbone()
    for _ in range(3):
        assert bb.provenance() == {"backbone": "vgg16", "weights": str(found.resolve()), "sha256": digest}
    VGG16Backbone()
    assert hashed[str(found.resolve())] == 1 and bb.verified


def test_sfd_checkpoint_is_hashed_once(tmp_path, hashed):
    from iqa.semantic import VGG16Backbone
    from iqa.sfd import SFD, SFDIQA, SFDConfig, save_sfd

    torch.manual_seed(0)
    bb = VGG16Backbone(net=W.vgg16_features())
    path = save_sfd(SFD(SFDConfig(feat_width=8, feat_layers=2, patch=32), bb), tmp_path / "sfd.safetensors")
    digest = A.sha256_bytes(path.read_bytes())
    a = SFDIQA(checkpoint=path, backbone=bb)
    b = SFDIQA(checkpoint=path, backbone=bb)
    assert a.provenance()["sha256"] == b.provenance()["sha256"] == digest
    assert hashed[str(path.resolve())] == 1


# --- methods ----------------------------------------------------------------------------------------

def test_spandrel_file_is_hashed_once_and_recorded(tmp_path, hashed):
    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny_x4.pth")
    a = create_method(f"spandrel:{ckpt}")
    b = create_method(f"spandrel:{ckpt}", tile=32)
    lr = torch.rand(1, 3, 8, 8)
    for _ in range(3):
        a.upscale(lr, 4)
        b.upscale(lr, 4)
    assert hashed[str(ckpt.resolve())] == 1
    assert sha256_values(a.provenance()) == [A.sha256_bytes(ckpt.read_bytes())]
    assert a.provenance()["weights"] == str(ckpt.resolve())


def test_catalogue_network_mismatch_says_how_to_fetch_it_again(tmp_path, monkeypatch):
    folder = A.ASSETS.cache
    folder.mkdir(parents=True)
    (folder / "esrgan_thick_x2.safetensors").write_bytes(b"not the network")
    with pytest.raises(SrbenchError) as e:
        create_method("esrgan-thick-x2")
    msg = one_line(e)
    assert msg.startswith(f"sha256 mismatch for {folder / 'esrgan_thick_x2.safetensors'}: expected ")
    assert "srbench assets fetch esrgan-thick-x2 --force" in msg


def test_verification_happens_before_deserialising(tmp_path, monkeypatch):
    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny_x4.pth")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("deserialised before the sha256 check"))
    with pytest.raises(SrbenchError, match="sha256 mismatch"):
        A.load_state_dict(ckpt, "0" * 64)


def test_a_file_changing_while_it_loads_is_an_error(tmp_path, monkeypatch):
    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny_x4.pth")
    real = A._load_pickle

    def growing(path):
        out = real(path)
        with open(path, "ab") as f:
            f.write(b"\0")
        return out

    monkeypatch.setattr(A, "_load_pickle", growing)
    with pytest.raises(SrbenchError, match="changed while it was being loaded"):
        A.load_state_dict(ckpt)


# --- huge checkpoints (section 4) ----------------------------------------------------------------

def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)  # no disk blocks: a hole
    return path


@pytest.fixture
def never_read_whole(monkeypatch):
    def refuse(self):
        raise MemoryError(f"read_bytes({self}) would read the whole file")

    monkeypatch.setattr(Path, "read_bytes", refuse)


def test_huge_checkpoint_is_refused_with_one_line_before_it_is_read(tmp_path, hashed, never_read_whole):
    big = sparse(tmp_path / "huge_x4.pth", 9 * GiB)
    for build in (lambda: create_method(f"spandrel:{big}"),
                  lambda: A.load_state_dict(big),
                  lambda: iqa.create_metric("lpips", backbone_weights=big)):
        with pytest.raises(SrbenchError) as e:
            build()
        msg = one_line(e)
        assert f"refused to load {big}: the weights file is 9 GiB, above the limit of 8 GiB" in msg
        assert A.MAX_WEIGHTS_ENV in msg
    assert not hashed  # nothing was read


def test_weights_limit_can_be_raised_or_lowered(tmp_path, monkeypatch):
    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny_x4.pth")
    monkeypatch.setenv(A.MAX_WEIGHTS_ENV, "0.000001")  # about 1 kB
    with pytest.raises(SrbenchError, match=r"above the limit of 1073 bytes .*SRBENCH_MAX_WEIGHTS_GB"):
        create_method(f"spandrel:{ckpt}")
    monkeypatch.setenv(A.MAX_WEIGHTS_ENV, "16")
    assert A.max_weights_bytes() == 16 * GiB
    assert create_method(f"spandrel:{ckpt}").scales == (4,)
    monkeypatch.setenv(A.MAX_WEIGHTS_ENV, "lots")
    with pytest.raises(SrbenchError, match="SRBENCH_MAX_WEIGHTS_GB must be a positive number of GiB, got 'lots'"):
        create_method(f"spandrel:{ckpt}")


def test_checkpoints_are_memory_mapped_not_read_whole(tmp_path, monkeypatch, never_read_whole):
    from safetensors.torch import save_file

    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny_x4.pth")
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("mmap"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    m = create_method(f"spandrel:{ckpt}")
    assert seen == [True] and m.upscale(torch.rand(1, 3, 8, 8), 4).shape == (1, 3, 32, 32)
    # safetensors through a memory map too
    sd = A.load_state_dict(ckpt)[0]
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "tiny_x4.safetensors"))
    assert create_method(f"spandrel:{tmp_path / 'tiny_x4.safetensors'}").scales == (4,)
    # legacy (pre-zip) checkpoints cannot be mapped: torch reads them from the file
    legacy = tmp_path / "legacy_x4.pth"
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    assert create_method(f"spandrel:{legacy}").scales == (4,)


def test_out_of_memory_while_loading_is_one_line(tmp_path, monkeypatch):
    ckpt = tiny_spandrel_checkpoint(tmp_path / "tiny_x4.pth")

    def oom(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(torch, "load", oom)
    with pytest.raises(SrbenchError) as e:
        create_method(f"spandrel:{ckpt}")
    assert one_line(e).startswith(f"not enough memory to load {ckpt}")


def test_clip_file_in_the_hub_cache_is_verified_by_its_blob_name(tmp_path):
    """The Hugging Face hub names a cached file's blob by its sha256: a blob whose bytes no longer
    match its name is refused before it is loaded; a file given by path is recorded only."""
    import iqa.clip as C
    from tests.helpers import tiny_clip

    cfg, weights = tiny_clip(tmp_path / "clip")
    digest = A.sha256_file(weights)
    blobs = tmp_path / "hub" / "models--x--y" / "blobs"
    blobs.mkdir(parents=True)
    blob = blobs / digest
    shutil.copyfile(weights, blob)
    snapshot = tmp_path / "hub" / "models--x--y" / "snapshots" / "abc" / "open_clip_model.safetensors"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(blob)
    assert C.expected_sha256("srbench-tiny-clip", "mytag", snapshot) == digest
    assert C.expected_sha256("srbench-tiny-clip", "mytag", weights) is None  # no known hash: record only
    assert C._clip_state_dict(snapshot, digest)[1] == digest
    alter_one_byte(blob)
    with pytest.raises(SrbenchError) as e:
        C._clip_state_dict(snapshot, digest)
    assert one_line(e).startswith(f"sha256 mismatch for {snapshot}: expected {digest}, got {A.sha256_file(blob)}")
    assert C.load_clip(str(cfg), None, weights=weights).provenance()["verified"] is False


def test_sfd_checkpoint_finds_the_backbone_file_it_was_trained_on(tmp_path, monkeypatch):
    """torchvision's own VGG16 file (found first, in $SRBENCH_WEIGHTS) has other bytes than the
    converted asset a checkpoint was trained on: the loader picks the file with the recorded hash."""
    import torch
    from safetensors.torch import save_file

    import iqa.assets
    import iqa.weights
    from iqa.semantic import build_backbone
    from iqa.sfd import SFD, SFDConfig, load_sfd, save_sfd
    from iqa.weights import vgg16_features

    cache = iqa.assets.cache_root() / "assets"
    cache.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    trained_on = cache / "vgg16-397923af.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in vgg16_features().state_dict().items()}, str(trained_on))
    other = tmp_path / "w"
    other.mkdir()
    torch.manual_seed(2)
    torch.save({f"features.{k}": v for k, v in vgg16_features().state_dict().items()}, other / "vgg16-397923af.pth")
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(other))
    monkeypatch.setitem(iqa.weights.TORCHVISION_SHA256, "vgg16", iqa.assets.sha256_file(other / "vgg16-397923af.pth"))
    try:
        model = SFD(SFDConfig(feat_width=8, feat_layers=2, patch=32), build_backbone("vgg16", weights=trained_on))
        ckpt = save_sfd(model, tmp_path / "sfd.safetensors", {"steps": 0})
        loaded, meta = load_sfd(ckpt)
        assert loaded.backbone.provenance()["sha256"] == iqa.assets.sha256_file(trained_on) == meta["backbone"]["sha256"]
    finally:
        trained_on.unlink()
