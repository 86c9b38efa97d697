import os
import stat

import pytest

from vidreid.atomic import atomic_path, write_bytes, write_text


def test_success_replaces_target_with_shared_mode_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.yaml"
    with atomic_path(target) as tmp:
        assert tmp.endswith(".yaml") and os.path.dirname(tmp) == str(target.parent)
        open(tmp, "w").write("new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(target.parent) == ["out.yaml"]


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "index.npz"
    write_text(target, "old")

    def explode(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_bytes(target, explode, fsync=True)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["index.npz"]


def test_failed_write_names_the_target_not_the_temp(tmp_path):
    import errno

    target = tmp_path / "last.pt"
    target.write_text("old")

    def full_disk(fh):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as info:
        write_bytes(target, full_disk)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["last.pt"]


def test_remove_stale_temps_removes_only_the_targets_temp_files(tmp_path):
    from vidreid.atomic import remove_stale_temps, temp_pattern

    keep = [tmp_path / "manifest.json", tmp_path / "shard-00000.npz", tmp_path / ".other.tmp"]
    stale = [tmp_path / ".manifest.json.ab12.tmp.json", tmp_path / ".shard-00003.npz.x.tmp.npz"]
    for path in keep + stale:
        path.write_text("x")
    with atomic_path(tmp_path / "manifest.json") as tmp:  # the names atomic_path makes match
        assert tmp_path.joinpath(os.path.basename(tmp)).match(temp_pattern("manifest.json"))
        open(tmp, "w").write("x")
    removed = remove_stale_temps(tmp_path, "manifest.json", "shard-*.npz")
    assert sorted(removed) == sorted(map(str, stale))
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in keep)
