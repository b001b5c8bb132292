from __future__ import annotations

import errno

import pytest

from vlcurate.pipeline import failures, faults
from vlcurate.pipeline.registry import Registry


@pytest.mark.parametrize("exc,machine", [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EIO, "Input/output error"), True),
    (MemoryError(), True),
    (type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory"), True),
    (PermissionError(errno.EACCES, "Permission denied"), False),  # an unreadable file: the input's problem
    (ValueError("not a timestamp"), False),
])
def test_machine_failures_are_told_from_input_faults(exc, machine):
    assert failures.is_machine_failure(exc) is machine
    wrapped = RuntimeError("while mapping")
    wrapped.__cause__ = exc
    assert failures.is_machine_failure(wrapped) is machine  # found through the cause chain


def test_tool_output_naming_a_full_disk_is_a_machine_error():
    with pytest.raises(failures.MachineError, match="No space left on device"):
        failures.check_tool_output("ffmpeg", "[out#0/mp4] Error writing trailer: No space left on device")
    failures.check_tool_output("ffmpeg", "moov atom not found")  # the file's fault: no exception


def test_a_failed_setup_says_whose_it_is():
    offline = RuntimeError("Failed to download weights for tag 'laion2b_s34b_b79k'. Please check your connection")
    found = failures.setup_failure("split", offline)
    assert isinstance(found, failures.ModelUnavailable) and "--profile demo" in str(found)
    assert "Please check" not in str(found)
    assert isinstance(failures.setup_failure("caption:x", RuntimeError("CUDA error")), failures.MachineError)
    missing = OSError("/models/blip is not a local folder and is not a valid model identifier listed on the hub")
    found = failures.setup_failure("caption:blip", missing)
    assert isinstance(found, failures.ModelUnavailable) and "cannot be found" in str(found)
    config = ValueError("bad detector_params")
    assert failures.setup_failure("split", config) is config


def test_an_unknown_registry_name_is_a_config_error_and_a_key_error():
    registry: Registry[int] = Registry("teacher")
    with pytest.raises(ValueError, match="unknown teacher 'x'; registered: none"):
        registry.get("x")
    with pytest.raises(KeyError):
        registry.get("x")


def test_fault_points_fire_as_armed(monkeypatch):
    monkeypatch.setenv(faults.ENV, "a=raise@2,b=enospc,c=full")
    faults.hit("a")
    with pytest.raises(RuntimeError, match="fault injected at a"):
        faults.hit("a")
    faults.hit("a")  # only the second hit
    with pytest.raises(OSError) as info:
        faults.hit("b")
    assert info.value.errno == errno.ENOSPC
    assert faults.path("c", "/tmp/x.mp4") == "/dev/full" and faults.path("d", "/tmp/x.mp4") == "/tmp/x.mp4"
