"""Device selection, the program cache and build-error reporting on PoCL's CPU device."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from singa_dsl.errors import KernelBuildError, SingaConfigError
from singa_dsl.runtime.device import Device, list_devices

GOOD = "__kernel void twice(__global float *x) { x[get_global_id(0)] *= 2.0f; }"
BAD = "__kernel void broken(__global float *x) { x[0] = undefined_name; }"


@pytest.fixture(scope="module")
def device():
    return Device.open()


def test_default_device_is_pocl_cpu(device):
    assert device.is_cpu
    assert "Portable Computing Language" in device.platform
    assert device.compute_units >= 1 and device.max_work_group_size >= 1


def test_select_by_index_and_by_name(device):
    assert Device.open("0:0").name == list_devices()[0][2].name.strip()
    assert Device.open("0").name == list_devices()[0][2].name.strip()
    assert Device.open("portable computing").platform == device.platform


def test_pyopencl_ctx_is_honoured_when_no_selector(monkeypatch):
    monkeypatch.setenv("PYOPENCL_CTX", "no-such-device")
    with pytest.raises(SingaConfigError):
        Device.open()
    monkeypatch.setenv("PYOPENCL_CTX", "0:0")
    assert Device.open().is_cpu


def test_unknown_selector_lists_available_devices(device):
    with pytest.raises(SingaConfigError) as info:
        Device.open("a-gpu-we-do-not-have")
    text = str(info.value)
    assert "a-gpu-we-do-not-have" in text
    assert "0:0" in text and device.name in text


def test_second_build_is_a_cache_hit(device):
    before = device.build_stats
    first = device.build(GOOD, ("-cl-mad-enable",), "test twice")
    second = device.build(GOOD, ("-cl-mad-enable",), "test twice")
    assert first is second
    after = device.build_stats
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    device.build(GOOD, (), "test twice")           # other options: another program
    assert device.build_stats.misses == after.misses + 1


def test_failed_build_names_origin_and_saves_source(device, tmp_path):
    dev = Device(device.cl_device, kernel_dir=tmp_path)
    with pytest.raises(KernelBuildError) as info:
        dev.build(BAD, ("-cl-mad-enable",), "dense 'fc1' at model.singa:12:3")
    text = str(info.value)
    assert "dense 'fc1' at model.singa:12:3" in text
    assert "undefined_name" in text                 # the compiler's own words
    saved = [Path(word) for word in text.split() if word.endswith(".cl")]
    assert saved and saved[0].exists() and saved[0].parent == tmp_path
    assert saved[0].read_text() == BAD
    assert info.value.exit_code == 4


def test_failed_build_without_directory_uses_a_temp_dir(device):
    with pytest.raises(KernelBuildError) as info:
        device.build(BAD, (), "")
    saved = [Path(w) for w in str(info.value).split() if w.endswith(".cl")]
    assert saved and saved[0].exists()
    shutil.rmtree(saved[0].parent)


def test_upload_download_round_trip(device):
    data = np.arange(10, dtype=np.float32)
    buf = device.alloc(data.nbytes)
    device.upload(buf, data)
    out = device.download(buf, np.empty_like(data))
    np.testing.assert_array_equal(out, data)
