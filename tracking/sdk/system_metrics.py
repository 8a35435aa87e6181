"""System metrics: the training machine's CPU, memory, disk, network and GPUs as ``system/*``.

A daemon thread per run reads them every ``interval`` seconds (15 by default,
``LABBOOK_SYSTEM_METRICS_INTERVAL``) and queues one record on the run's sender,
at its own step: sample 0, 1, 2 ... (the run's auto-step is not touched). The
first sample is taken one interval after the run starts, none at finish.

Keys (MB are 2**20 bytes; disk and network are totals since the run started,
machine-wide, so a chart's slope is the rate):

* ``system/cpu_percent``: the whole machine's CPU, 0-100;
* ``system/proc_cpu_percent``: the training process (not its children), 0-100 x cores;
* ``system/memory_percent``: the machine's memory in use, 0-100;
* ``system/proc_memory_rss_mb``: the training process's resident memory;
* ``system/disk_read_mb``, ``system/disk_write_mb``: read from / written to disks;
* ``system/net_sent_mb``, ``system/net_recv_mb``: sent / received on all interfaces;
* per NVIDIA GPU ``i``: ``system/gpu.{i}.utilization`` (0-100),
  ``system/gpu.{i}.memory_percent`` (0-100), ``system/gpu.{i}.temperature_c``.

psutil is an optional dependency (the SDK's ``system`` extra, with nvidia-ml-py
for the GPUs): without it there is no sampler, and one line says so. Without an
NVIDIA driver there are no GPU keys and nothing is said. A reading that fails is
reported once and skipped; nothing reaches the training code.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tracking.sdk.sender import Record, warn

PREFIX = "system/"
MB = 2**20
INSTALL_HINT = (
    "pip install psutil nvidia-ml-py, or the SDK's extra: pip install 'labbook-sdk[system]'"
)
_counter_fields = {
    "disk_read_mb": ("disk_io_counters", "read_bytes"),
    "disk_write_mb": ("disk_io_counters", "write_bytes"),
    "net_sent_mb": ("net_io_counters", "bytes_sent"),
    "net_recv_mb": ("net_io_counters", "bytes_recv"),
}
_missing_psutil_said = False


def load_psutil(*, quiet: bool) -> ModuleType | None:
    """psutil, or None (said once per process unless ``quiet``)."""
    global _missing_psutil_said
    try:
        return importlib.import_module("psutil")
    except ImportError:
        if not quiet and not _missing_psutil_said:
            _missing_psutil_said = True
            warn(f"system metrics are off: psutil is not installed ({INSTALL_HINT})")
        return None


def load_nvml() -> ModuleType | None:
    """pynvml, initialised; None without nvidia-ml-py or an NVIDIA driver (not an error)."""
    try:
        nvml = importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception:  # no module, no libnvidia-ml.so, no driver, no device: no GPU keys
        return None
    return nvml


def gpu_values(nvml: Any) -> dict[str, float]:
    """``system/gpu.{i}.*`` of every GPU NVML sees; a reading the GPU does not offer is left out."""
    values: dict[str, float] = {}
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        for name, read in _GPU_READINGS.items():
            try:
                values[f"{PREFIX}gpu.{index}.{name}"] = read(nvml, handle)
            except nvml.NVMLError:  # e.g. NotSupported on this model: skip that key
                continue
    return values


def _utilization(nvml: Any, handle: Any) -> float:
    return float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)


def _memory_percent(nvml: Any, handle: Any) -> float:
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    return 100.0 * memory.used / memory.total if memory.total else 0.0


def _temperature(nvml: Any, handle: Any) -> float:
    return float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))


_GPU_READINGS: dict[str, Callable[[Any, Any], float]] = {
    "utilization": _utilization,
    "memory_percent": _memory_percent,
    "temperature_c": _temperature,
}


class SystemSampler:
    """The thread that queues a ``system/*`` record every ``interval`` seconds."""

    def __init__(
        self,
        *,
        psutil: ModuleType,
        put: Callable[[Record], None],
        interval: float,
        first_sample: int = 0,
    ) -> None:
        self._psutil = psutil
        self._put = put
        self._interval = interval
        self._sample = first_sample
        self._stopping = threading.Event()
        self._warned = False
        self._baseline: dict[str, float] = {}
        self._process: Any = None
        self._nvml: ModuleType | None = None
        self._thread = threading.Thread(target=self._loop, name="labbook-system", daemon=True)

    @property
    def samples(self) -> int:
        """The next sample's step: how many were taken, counting a resumed run's earlier ones."""
        return self._sample

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop sampling; once this returns, every sample taken is on the sender's queue."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        if not self._guard(self._begin):
            return
        while not self._stopping.wait(self._interval):
            self._guard(self._take_sample)
        if self._nvml is not None:
            self._guard(self._nvml.nvmlShutdown)

    def _guard(self, action: Callable[[], object]) -> bool:
        """Run ``action``; any error is said once and swallowed (False)."""
        try:
            action()
        except Exception as error:
            if not self._warned:
                self._warned = True
                warn(f"system metrics: {type(error).__name__}: {error} (skipping such samples)")
            return False
        return True

    def _begin(self) -> None:
        """The baselines: CPU percentages and I/O totals count from here."""
        psutil = self._psutil
        psutil.cpu_percent(interval=None)
        self._process = psutil.Process()
        self._process.cpu_percent(interval=None)
        self._baseline = self._counters()
        self._nvml = load_nvml()

    def _take_sample(self) -> None:
        values = self.read()
        self._put(("p", self._sample, time.time(), values))
        self._sample += 1

    def read(self) -> dict[str, float]:
        """One sample's values."""
        psutil, process = self._psutil, self._process
        with process.oneshot():
            values = {
                f"{PREFIX}proc_cpu_percent": float(process.cpu_percent(interval=None)),
                f"{PREFIX}proc_memory_rss_mb": process.memory_info().rss / MB,
            }
        values[f"{PREFIX}cpu_percent"] = float(psutil.cpu_percent(interval=None))
        values[f"{PREFIX}memory_percent"] = float(psutil.virtual_memory().percent)
        for name, total in self._counters().items():
            values[f"{PREFIX}{name}"] = (total - self._baseline.get(name, total)) / MB
        nvml = self._nvml
        if nvml is not None:  # a GPU that fails costs its keys, not the CPU's
            self._guard(lambda: values.update(gpu_values(nvml)))
        return values

    def _counters(self) -> dict[str, float]:
        """Disk and network byte totals; a machine without disks (some containers) has none."""
        totals: dict[str, float] = {}
        for name, (function, field) in _counter_fields.items():
            counters = getattr(self._psutil, function)()
            if counters is not None:
                totals[name] = float(getattr(counters, field))
        return totals
