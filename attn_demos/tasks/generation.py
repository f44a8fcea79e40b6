"""Text generation with a decoder-only model: a prompt, its continuation (greedy or beam search),
and for every generated token the attention it paid to the prompt and to the tokens before it,
gathered from generate() along the output's beam and checked against a from-scratch
recomputation of a teacher-forced pass over prompt + output."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from attn_demos.adapters.attention_function import FROM_WEIGHTS
from attn_demos.adapters.compare import generate_and_force
from attn_demos.adapters.extract import causal_teacher_forced
from attn_demos.adapters.families import DECODER
from attn_demos.adapters.loading import LoadedModel
from attn_demos.adapters.neuron import neuron_terms
from attn_demos.core.pooling import display_tokens
from attn_demos.errors import BadInputError
from attn_demos.tasks.inputs import clean_text, token_limit, tokenize_text, tokenizer_lock
from attn_demos.tasks.registry import display_name, get_model, model_notices
from attn_demos.tasks.views import SelectedMap, head_choices, max_abs_difference, neuron_view_terms, select, select_map

MAX_NEW_TOKENS_CAP = 64  # the most tokens one request may generate
DEFAULT_MAX_NEW_TOKENS = 32
MAX_BEAMS = 8
MAX_PROMPT_TOKENS = 512  # every step's attention over the prompt is kept: longer prompts are refused, not cut


@dataclass
class GenerationResult:
    """A continuation and, per generated token, its attention over prompt + earlier tokens (real rows only).

    Row g is the step that produced generated token g: its query is the token before it (the
    prompt's last token for g = 0), its keys the prompt and generated tokens 0 … g−1.
    """

    model: str
    prompt: str  # what the model read (with the chat template, when applied)
    output_text: str
    prompt_tokens: list[str]  # P labels
    generated_tokens: list[str]  # N labels: the token each step produced
    key_tokens: list[str]  # P + N − 1 labels: prompt, then every generated token but the last
    generated: np.ndarray  # (L, H, N, P+N−1) gathered from generate()
    recomputed: np.ndarray  # (L, H, N, P+N−1) from scratch, teacher-forced
    num_beams: int = 1
    notices: list[str] = field(default_factory=list)
    source: str | None = None  # the model named by the request (None: the tab's configured one)
    inputs: dict | None = None  # the teacher-forced pass's inputs, on the CPU (1, P+N−1) each (for the neuron view)
    positions: list[int] = field(default_factory=list)  # (N,) the query position of each step in that pass

    def neuron(self, layer: int, head: int, index: int) -> dict:
        """The terms behind the step that produced generated token `index`, (layer, head), from one
        more teacher-forced pass (on request), in the neuron view's vocabulary."""
        if self.inputs is None:
            raise BadInputError("this result keeps no inputs: run the model again")
        self.token_scores(index)  # an index outside the output is refused
        loaded = get_model("generate", self.source)
        inputs = {name: value.to(loaded.model.device) for name, value in self.inputs.items()}
        shown_row = self.recomputed[int(layer), int(head), index]  # (P+N−1,) used under sdpa only
        terms = neuron_terms(loaded, inputs, DECODER, int(layer), int(head), self.positions[index], verified_row=shown_row)
        return neuron_view_terms(terms, display_tokens(self.key_tokens), display_tokens(self.generated_tokens)[index], layer, head)
    depth: str = FROM_WEIGHTS  # how deep `recomputed` was checked (adapters/attention_function.py)

    @property
    def num_layers(self) -> int:
        return self.generated.shape[0]

    @property
    def num_heads(self) -> int:
        return self.generated.shape[1]

    def head_options(self) -> list:
        return head_choices(self.num_heads, with_rollout=False)

    def view(self, layer: int | str = "mean", head: int | str = "mean", words: bool = False) -> SelectedMap:
        """Generated tokens (rows) × prompt and earlier tokens (columns), with the live check."""
        return select_map(
            "attention of each generated token", self.generated, self.recomputed, self.generated_tokens,
            self.key_tokens, layer, head, words, self.notices, depth=self.depth,
        )

    def token_scores(self, index: int, layer: int | str = "mean", head: int | str = "mean") -> np.ndarray:
        """(P+N−1,) attention of the step that produced generated token `index` (zeros after its query)."""
        if not 0 <= index < len(self.generated_tokens):
            raise BadInputError(f"choose a generated token between 0 and {len(self.generated_tokens) - 1}")
        return select(self.generated, layer, head)[index]

    @property
    def max_abs_err(self) -> float:
        """Worst |Δ| between the gathered steps and the recomputation, over every layer and head."""
        return max_abs_difference(self.generated, self.recomputed)


def generate(
    prompt: str,
    source: str | None = None,
    num_beams: int = 1,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    chat: bool = True,
) -> GenerationResult:
    """Continue `prompt` with the generation model (or `source`); greedy unless num_beams > 1."""
    result = run_generation(get_model("generate", source), prompt, num_beams, max_new_tokens, chat)
    result.source = source  # the neuron view loads the same model again
    return result


def run_generation(
    loaded: LoadedModel, prompt: str, num_beams: int = 1, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, chat: bool = True
) -> GenerationResult:
    """generate() once with attention, then one recomputed teacher-forced pass over prompt + output."""
    if not loaded.is_decoder_only:
        raise BadInputError(f"{display_name(loaded.source)} is not a decoder-only language model; choose one such as GPT-2 or SmolLM2")
    if not 1 <= int(num_beams) <= MAX_BEAMS:
        raise BadInputError(f"choose between 1 and {MAX_BEAMS} beams")
    if not 1 <= int(max_new_tokens) <= MAX_NEW_TOKENS_CAP:
        raise BadInputError(f"choose between 1 and {MAX_NEW_TOKENS_CAP} new tokens")
    text, _ = clean_text(prompt, "prompt")
    templated = chat and bool(getattr(loaded.preprocessor, "chat_template", None))
    if templated:
        text = loaded.preprocessor.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
    check_prompt_length(loaded, text, not templated, int(max_new_tokens))
    inputs, side, notices = tokenize_text(loaded, text, what="prompt", special_tokens=not templated)
    generated, forced = generate_and_force(loaded, dict(inputs), int(num_beams), int(max_new_tokens))
    prompt_length = generated.prompt_length
    rows = generated.maps[DECODER].query_mask[0].numpy().copy()  # (P+N−1,) real rows
    rows[: prompt_length - 1] = False  # the prompt's own rows: not generation steps
    sequence = generated.sequences[0]
    steps = int(rows.sum())
    tokenizer = loaded.preprocessor
    produced = tokenizer.convert_ids_to_tokens(sequence[prompt_length : prompt_length + steps].tolist())
    return GenerationResult(
        model=loaded.source,
        prompt=text,
        output_text=tokenizer.decode(sequence[prompt_length : prompt_length + steps], skip_special_tokens=True),
        prompt_tokens=side.tokens[0],
        generated_tokens=[t if t is not None else "<unk>" for t in produced],
        key_tokens=generated.side.tokens[0],
        generated=generated.maps[DECODER].weights[0].numpy()[:, :, rows],  # (L, H, N, P+N−1)
        recomputed=forced.recomputed[DECODER][0].numpy()[:, :, rows],  # (L, H, N, P+N−1)
        num_beams=int(num_beams),
        notices=model_notices(loaded) + notices + (["Chat template applied."] if templated else []),
        inputs={name: value.detach().cpu() for name, value in causal_teacher_forced(dict(inputs), generated.sequences).items()},
        positions=np.flatnonzero(rows).tolist(),
        depth=loaded.depth,
    )


def check_prompt_length(loaded: LoadedModel, text: str, special_tokens: bool, max_new_tokens: int) -> None:
    """Refuse a prompt that leaves no room for the new tokens (cutting it would continue a different text)."""
    tokenizer = loaded.preprocessor
    with tokenizer_lock(tokenizer):
        length = len(tokenizer(text, truncation=False, add_special_tokens=special_tokens)["input_ids"])
    room = min(MAX_PROMPT_TOKENS, token_limit(loaded) - max_new_tokens)  # the model's limit and the maps budget
    if length > room:
        raise BadInputError(
            f"The prompt is too long: {length:,} tokens, and this tab reads at most {max(room, 0)} "
            f"before {max_new_tokens} new tokens; shorten it or ask for fewer new tokens."
        )
