"""X-CLIP (transformers XCLIPModel, e.g. microsoft/xclip-base-patch32; `tiny:xclip` in tests): a native video-text
model. A clip's stored frames go in as one video; the model's cross-frame attention and multi-frame integration
transformer (MIT) make one video embedding from them.

The score is the model's own similarity, not a cosine of two independently computed embeddings: X-CLIP's prompt
generator adds to each text embedding a term computed from the video's patch features, so a text's embedding
depends on the clip it is compared with. `score_pairs` runs XCLIPModel's forward and returns, for each clip and
each of its texts, the cosine of the video embedding and the video-conditioned text embedding, which is exactly
`logits_per_video / logit_scale.exp()`: on the same [-1, 1] scale as the dual-encoder scorers' cosines.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vlcurate.stages import media, models
from vlcurate.stages.torch_setup import torch_device, torch_dtype
from vlcurate.stages.scorers.base import SCORERS, Scorer, pooled


@SCORERS.register("xclip")
class XClipScorer(Scorer):
    """`batch_size` counts frames, as for the image scorers: a model call sees batch_size // num_frames clips."""


    def setup(self) -> None:
        import torch
        from transformers import AutoProcessor, XCLIPModel

        resolved = models.resolve(self.config.model)
        self.weights = resolved.weights
        self.device = torch_device(self.config.device)
        self.dtype = torch_dtype(self.config.dtype, self.device)
        self.model = XCLIPModel.from_pretrained(resolved.location, dtype=self.dtype).to(self.device).eval()
        self.processor = AutoProcessor.from_pretrained(resolved.location)
        self.tokenizer = self.processor.tokenizer
        # fixed by the checkpoint: cross-frame attention and the MIT's position embeddings are sized for it
        self.num_frames: int = self.model.config.vision_config.num_frames
        self.context_length = min(self.model.config.text_config.max_position_embeddings,
                                  self.tokenizer.model_max_length)
        self.clips_per_call = max(1, self.config.batch_size // self.num_frames)
        self._torch = torch

    def video(self, frames: Sequence[bytes]) -> list:
        """The clip as the model's video: `num_frames` PIL images picked by `media.sample_frames`."""
        if not frames:
            raise ValueError("a clip has no stored frames to make a video from")
        return media.frame_images(frames, self.num_frames)

    def _pixels(self, clips: Sequence[Sequence[bytes]]):
        pixels = self.processor(videos=[self.video(f) for f in clips], return_tensors="pt")["pixel_values"]
        return pixels.to(self.device, self.dtype)

    def embed_clips(self, clips: Sequence[list[bytes]]) -> np.ndarray:
        """(N, D) unit video embeddings (cross-frame ViT then MIT); they do not depend on any text."""
        torch = self._torch
        parts = []
        for start in range(0, len(clips), self.clips_per_call):
            with torch.inference_mode():
                out = pooled(self.model.get_video_features(
                    pixel_values=self._pixels(clips[start:start + self.clips_per_call]))).float()
                parts.append(torch.nn.functional.normalize(out, dim=-1).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, self.model.config.projection_dim), np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError(
            "xclip: a text has no video-independent embedding to compare (X-CLIP's prompt generator conditions it "
            "on the video); score (clip, text) pairs with score_pairs")

    def score_pairs(self, clips: Sequence[list[bytes]], texts: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """XCLIPModel's forward on a batch of clips and all their texts; each clip keeps the scores of its own texts
        (the prompt generator treats every (video, text) pair independently, so the others change nothing)."""
        torch = self._torch
        if len(texts) != len(clips):
            raise ValueError(f"xclip: {len(clips)} clips but {len(texts)} text lists")
        out = [np.zeros(0, np.float32) for _ in clips]
        for start in range(0, len(clips), self.clips_per_call):
            idx = [n for n in range(start, min(start + self.clips_per_call, len(clips))) if texts[n]]
            if not idx:
                continue
            flat = [t for n in idx for t in texts[n]]
            tokens = self.tokenizer(flat, padding=True, truncation=True, max_length=self.context_length,
                                    return_tensors="pt")
            with torch.inference_mode():
                result = self.model(input_ids=tokens["input_ids"].to(self.device),
                                    attention_mask=tokens["attention_mask"].to(self.device),
                                    pixel_values=self._pixels([clips[n] for n in idx]))
                # both unit vectors: this is logits_per_video without the learned temperature
                sims = torch.einsum("bd,bkd->bk", result.video_embeds.float(), result.text_embeds.float()).cpu()
            k = 0
            for b, n in enumerate(idx):
                out[n] = sims[b, k:k + len(texts[n])].numpy()
                k += len(texts[n])
        return out

    def truncated(self, text: str) -> bool:
        """Whether the text was cut to the text encoder's context (77 tokens with start and end for X-CLIP)."""
        return len(self.tokenizer(text, truncation=False)["input_ids"]) > self.context_length
