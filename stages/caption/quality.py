"""The caption-quality gate: flags for the ways a caption fails that no retrieval score catches, each flag rejecting
the candidate (its status `rejected`, the flag its reason) or only tagging it, as `caption.quality` says.

Flags (a candidate keeps every one it raised in `flags`, whatever their action):
- `empty`: no words;
- `truncated`: generation stopped at the token limit (`max_new_tokens`, a served model's `max_tokens`), so the
  caption may end mid-sentence;
- `copies_subtitles`, `copies_title`: a model teacher's caption that is, all but a few words, a run of the text it was
  shown (its baselines do that on purpose);
- `prompt_echo`: a run of words from the teacher's own prompt or instructions written back;
- `repetitive`: one word over `top_word_share` of the words, an n-gram `ngram_repeats` times, or fewer distinct
  words than `min_unique_ratio` of them;
- `length`: fewer words than `min_words` or more than `max_words`;
- `near_duplicate`: the same words (Jaccard of the word sets at least `near_duplicate_jaccard`) as an earlier
  teacher's usable candidate of the clip.

Cosmos Curator counts such outcomes per run; here they also decide, per flag, and stats.json counts them per teacher.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["reject", "tag", "off"]
FLAGS = ("empty", "truncated", "copies_subtitles", "copies_title", "prompt_echo", "repetitive", "length",
         "near_duplicate")


class QualityConfig(BaseModel):
    """What each flag does: `reject` (status rejected, the flag as the reason), `tag` (kept, flagged) or `off`."""

    model_config = ConfigDict(extra="forbid")

    empty: Action = "reject"
    truncated: Action = "tag"
    copies: Action = Field("reject", description="copies_subtitles / copies_title, for teachers that reject copies")
    repetitive: Action = "reject"
    prompt_echo: Action = "tag"
    length: Action = "tag"
    near_duplicate: Action = Field("off", description="judged across teachers, so a teacher added to a run can flag a "
                                   "candidate kept from the last one: off unless asked for (the demo tags)")
    top_word_share: float = Field(0.5, gt=0, le=1, description="repetitive: one word over this share of the words")
    ngram: int = Field(3, ge=2, description="repetitive: the n of the repeated n-gram")
    ngram_repeats: int = Field(3, ge=2, description="repetitive: an n-gram this many times")
    min_unique_ratio: float = Field(0.4, ge=0, le=1, description="repetitive: distinct words under this share")
    min_repetition_words: int = Field(6, ge=1, description="repetition is judged on captions of at least this many "
                                                           "words (a short caption repeats nothing)")
    min_words: int = Field(3, ge=0, description="length: fewer words than this")
    max_words: int = Field(80, ge=1, description="length: more words than this")
    echo_words: int = Field(6, ge=2, description="prompt_echo: a run of this many of the prompt's words")
    near_duplicate_jaccard: float = Field(0.9, gt=0, le=1, description="near_duplicate: word-set overlap at least")

    def action(self, flag: str) -> Action:
        return self.copies if flag.startswith("copies_") else getattr(self, flag)


def words(text: str | None) -> list[str]:
    return re.findall(r"[\w']+", (text or "").lower())


def copies(text: str, source: str | None, min_run: int = 4) -> bool:
    """True when the caption is, all but a few words, a run of the source's words: at least three quarters of the
    caption (and at least `min_run` words, or all of a shorter caption) appears word for word in the source."""
    import difflib

    caption, shown = words(text), words(source)
    if not caption or not shown:
        return False
    match = difflib.SequenceMatcher(None, caption, shown, autojunk=False).find_longest_match(
        0, len(caption), 0, len(shown))
    return match.size >= min(min_run, len(caption)) and match.size >= 0.75 * len(caption)


def echoes(text: str, prompt: str | None, run: int) -> bool:
    """Whether `run` consecutive words of the prompt (its template text, placeholders left out) are in the caption."""
    template = words(re.sub(r"\{[^}]*\}", " | ", prompt or ""))
    caption = " ".join(words(text))
    return any(" ".join(template[i:i + run]) in caption for i in range(len(template) - run + 1)) if caption else False


def repetitive(tokens: list[str], config: QualityConfig) -> str | None:
    """Why the words repeat themselves, or None."""
    if len(tokens) < config.min_repetition_words:
        return None
    top, count = Counter(tokens).most_common(1)[0]
    if count / len(tokens) > config.top_word_share:
        return f"'{top}' is {count} of {len(tokens)} words"
    grams = Counter(tuple(tokens[i:i + config.ngram]) for i in range(len(tokens) - config.ngram + 1))
    gram, times = grams.most_common(1)[0] if grams else ((), 0)
    if times >= config.ngram_repeats:
        return f"'{' '.join(gram)}' {times} times"
    if len(set(tokens)) / len(tokens) < config.min_unique_ratio:
        return f"{len(set(tokens))} distinct of {len(tokens)} words"
    return None


def flags(text: str, config: QualityConfig, shown: dict[str, str | None] | None = None,
          prompt: str | None = None, truncated: bool = False) -> list[tuple[str, str]]:
    """(flag, detail) for one caption, in FLAGS order; `shown`: the texts it must not merely copy; `prompt`: the
    teacher's prompt template; `truncated`: generation stopped at the token limit."""
    tokens = words(text)
    if not tokens:
        return [("empty", "no words")] if config.empty != "off" else []
    found: list[tuple[str, str]] = []
    if truncated and config.truncated != "off":
        found.append(("truncated", "stopped at the token limit"))
    for name, source in (shown or {}).items():
        if config.copies != "off" and copies(text, source):
            found.append((f"copies_{name}", f"repeats the {name} it was shown"))
    if config.prompt_echo != "off" and echoes(text, prompt, config.echo_words):
        found.append(("prompt_echo", f"{config.echo_words} words of the prompt written back"))
    why = repetitive(tokens, config) if config.repetitive != "off" else None
    if why:
        found.append(("repetitive", why))
    if config.length != "off" and not config.min_words <= len(tokens) <= config.max_words:
        found.append(("length", f"{len(tokens)} words (allowed {config.min_words}-{config.max_words})"))
    return found


def verdict(found: list[tuple[str, str]], config: QualityConfig) -> tuple[str, str | None, list[str]]:
    """(status, reason, flags) of a candidate from its flags: the first rejecting flag is the reason."""
    rejecting = [(f, d) for f, d in found if config.action(f) == "reject"]
    reason = f"{rejecting[0][0]}: {rejecting[0][1]}" if rejecting else None
    return ("rejected" if rejecting else "ok"), reason, [f for f, _ in found]


def mark_near_duplicates(candidates: list[dict[str, Any]], config: QualityConfig) -> None:
    """Flag (or reject) each usable candidate whose words are those of an earlier teacher's usable candidate of the
    same clip. A candidate already flagged keeps its verdict, so reruns that keep candidates decide the same."""
    if config.near_duplicate == "off":
        return
    kept: list[tuple[str, set[str]]] = []
    for c in candidates:
        if c["status"] != "ok" or not c["text"]:
            continue
        mine = set(words(c["text"]))
        if "near_duplicate" not in (c.get("flags") or []):
            twin = next((name for name, other in kept if mine and len(mine & other) / len(mine | other)
                         >= config.near_duplicate_jaccard), None)
            if twin is not None:
                c["flags"] = [*(c.get("flags") or []), "near_duplicate"]
                if config.near_duplicate == "reject":
                    c["status"], c["reason"] = "rejected", f"near_duplicate: the words of {twin}'s caption"
                    continue
        if c["status"] == "ok":
            kept.append((c["teacher"], mine))
