"""HowToCaption: a language model turns a video's speech transcript into short, timestamped, visual sentences,
and each sentence goes to the clip whose time it names.

The transcript is packed into blocks of at most `block_words` words, each line prefixed `Ns:`; the model is
asked for short present-tense sentences, each starting with a timestamp; the answer is parsed, every timestamp is
clamped to its block's range, and a clip's caption is the sentences timed inside it. A block is generated once
per worker and alone (batch of one), so the result does not depend on how clips were batched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from vlcurate.stages.caption.subtitles import Cue
from vlcurate.stages.caption.teachers.base import TEACHERS, ClipInput
from vlcurate.stages.caption.teachers.llm import LLMTeacher

DEFAULT_PROMPT = (
    "Transcript with timestamps:\n{transcript}\n\n"
    "For each timestamp, write what happens in the video as a short present-tense sentence. "
    "Answer with lines of the form '<time>s: <sentence>'."
)  # a worked example in the prompt gets copied verbatim by small models (seen with SmolLM2-135M)
_LINE = re.compile(r"^\s*(?:[-*\d.)]+\s+)?(\d+(?:\.\d+)?)\s*s(?:ec(?:onds?)?)?\s*[:\-–]\s*(.+?)\s*$")


@dataclass(frozen=True)
class Block:
    start_s: float
    end_s: float
    cues: tuple[Cue, ...]

    def text(self) -> str:
        return "\n".join(f"{int(c.start_s)}s: {c.text}" for c in self.cues)


def pack_blocks(cues: Sequence[Cue], max_words: int = 200) -> list[Block]:
    """Consecutive cues, at most `max_words` words a block (a longer single cue gets a block of its own)."""
    blocks: list[Block] = []
    current: list[Cue] = []
    words = 0
    for cue in cues:
        n = len(cue.text.split())
        if current and words + n > max_words:
            blocks.append(Block(current[0].start_s, current[-1].end_s, tuple(current)))
            current, words = [], 0
        current.append(cue)
        words += n
    if current:
        blocks.append(Block(current[0].start_s, current[-1].end_s, tuple(current)))
    return blocks


def parse_timed_sentences(text: str, block: Block) -> list[tuple[float, str]]:
    """`Ns: sentence` lines, timestamps clamped to the block; lines without a timestamp are dropped."""
    out = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        t = min(max(float(match.group(1)), block.start_s), block.end_s)
        sentence = match.group(2).strip().strip("\"'")
        if sentence:
            out.append((t, sentence))
    return out


def assign(sentences: Sequence[tuple[float, str]], start_s: float, end_s: float, span_s: float = 1.0) -> str:
    """The sentences whose second [t, t + span_s) overlaps the clip [start_s, end_s), in time order (timestamps
    are whole seconds, so a sentence at 1s belongs to a clip starting at 1.2 s)."""
    return " ".join(s for t, s in sorted(sentences, key=lambda x: x[0]) if t < end_s and t + span_s > start_s)


@TEACHERS.register("howtocaption")
class HowToCaptionTeacher(LLMTeacher):
    default_prompt = DEFAULT_PROMPT
    serves = False  # a block's sentences are shared by its clips: in-process only, with no per-clip token counts
    # room for a block's timestamped lines; no n-gram blocking, which would forbid the `Ns:` line format
    default_generation = {"max_new_tokens": 160, "do_sample": False}
    default_inputs = ("subtitles",)

    def setup(self) -> None:
        super().setup()
        self._blocks: dict[str, list[Block]] = {}
        self._sentences: dict[tuple[str, int], list[tuple[float, str]]] = {}

    @property
    def block_words(self) -> int:
        return int(self.config.options.get("block_words", 200))

    def can_caption(self, clip: ClipInput) -> bool:
        return bool(clip.transcript)

    def generate_block(self, block: Block) -> str:
        """The model's raw answer for one block."""
        prompt = (self.config.prompt or DEFAULT_PROMPT).format(transcript=block.text())
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                  tokenize=False)
        inputs = self.tokenizer([text], return_tensors="pt", add_special_tokens=False).to(self.device)
        with self._torch.inference_mode():
            out = self.model.generate(**inputs, **self.generation_kwargs(self.tokenizer.pad_token_id))
        return self.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def sentences_for(self, clip: ClipInput) -> list[tuple[float, str]]:
        key = clip.transcript_key or clip.clip_id
        if key not in self._blocks:
            self._blocks[key] = pack_blocks(clip.transcript, self.block_words)
        found: list[tuple[float, str]] = []
        for i, block in enumerate(self._blocks[key]):
            if block.end_s < clip.start_s or block.start_s >= clip.end_s:
                continue
            if (key, i) not in self._sentences:
                self._sentences[(key, i)] = parse_timed_sentences(self.generate_block(block), block)
            found.extend(self._sentences[(key, i)])
        return found

    def caption(self, clips: Sequence[ClipInput]) -> list[str]:
        return [assign(self.sentences_for(c), c.start_s, c.end_s) for c in clips]
