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
