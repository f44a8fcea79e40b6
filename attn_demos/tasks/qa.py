"""Extractive question answering: the answer span, and the context as the answer (or the
question) attends to it.

Answers the way the transformers question-answering pipeline did (it left transformers 5):
- a context longer than the model's limit is read in overlapping windows (the question whole in
  each, DOC_STRIDE context tokens shared by neighbours), every one of them up to QA_MAX_WINDOWS;
  the best span of all windows searched wins and the attention shown is that of its window.
  Cheapest first: the windows are scored in batches of plain forward passes, and only the winning
  window runs again with its attention recomputed and checked;
- start and end probabilities are a softmax over the context tokens plus [CLS] only; a span's score
  is P(start)·P(end), end ≥ start, at most MAX_ANSWER_TOKENS tokens, inside the context;
- the answer is the context's own characters between the span's character offsets, never the
  tokenizer's decoding (which loses case, and spaces "state-of-the-art" into "state - of - the - art").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch

from attn_demos.adapters.extract import Side, token_labels
from attn_demos.adapters.families import ENCODER
from attn_demos.adapters.neuron import neuron_terms
from attn_demos.core.aggregate import rollout_rows
from attn_demos.core.pooling import display_tokens
from attn_demos.errors import BadInputError
from attn_demos.tasks.checked import checked_forward
from attn_demos.tasks.hardware import on_gpu
from attn_demos.tasks.inputs import clean_text, token_limit, tokenizer_lock
from attn_demos.tasks.registry import get_model, model_notices
from attn_demos.tasks.views import SelectedMap, SelfAttentionStack, neuron_view_terms, select, select_map

MAX_ANSWER_TOKENS = 30  # longest answer span, in tokens
LOW_CONFIDENCE = 0.1  # below this score the answer gets a notice
DOC_STRIDE = 128  # context tokens shared by neighbouring windows (the pipeline's default), at most half a window
QA_MAX_WINDOWS = 32  # windows one question searches (~7,900 context tokens in 384-token windows); more: a notice
WINDOW_BATCH = 8  # windows scored per forward pass
QUESTION, CONTEXT = 0, 1  # sequence ids of the pair


@dataclass
class QAResult(SelfAttentionStack):
    model: str
    answer: str
    score: float  # P(start) · P(end) of the chosen span, softmax over the window's context + [CLS]
    span: tuple[int, int]  # token indices (inclusive) of the answer, in the window shown
    tokens: list[str]  # (T,) [CLS] question [SEP] context window [SEP]
    question_index: list[int]  # token positions of the question
    context_index: list[int]  # token positions of the context
    library: np.ndarray | None  # (L, H, T, T) of the window the answer came from; None under sdpa
    recomputed: np.ndarray  # (L, H, T, T)
    notices: list[str] = field(default_factory=list)
    window: int = 0  # which window (0-based) the answer and the attention come from
    windows: int = 1  # how many windows were searched
    windows_in_context: int = 1  # how many windows the whole context makes (more than `windows` past QA_MAX_WINDOWS)
    output_errors: np.ndarray | None = None  # (L, H) sdpa: relative output error per layer and head
    inputs: dict | None = None  # the shown window's model inputs, on the CPU (1, T) each (for the neuron view)
    source: str | None = None  # the model named by the request (None: the tab's configured one)

    def neuron(self, layer: int, head: int, query_index: int) -> dict:
        """The terms behind row `query_index` of (layer, head) of the shown window (one more forward
        pass, on request), in the neuron view's vocabulary, as the Explorer's."""
        if self.inputs is None:
            raise BadInputError("this result keeps no inputs: run the model again")
        if not 0 <= query_index < len(self.tokens):
            raise BadInputError(f"choose a query token between 0 and {len(self.tokens) - 1}")
        loaded = get_model("answer", self.source)
        inputs = {name: value.to(loaded.model.device) for name, value in self.inputs.items()}
        shown_row = self.recomputed[int(layer), int(head), int(query_index)]  # (T,) used under sdpa only
        terms = neuron_terms(loaded, inputs, ENCODER, int(layer), int(head), int(query_index), verified_row=shown_row)
        labels = display_tokens(self.tokens)
        return neuron_view_terms(terms, labels, labels[query_index], layer, head)

    @property
    def answer_index(self) -> list[int]:
        return list(range(self.span[0], self.span[1] + 1))

    def view(self, layer: int | str = 0, head: int | str = "mean", words: bool = False) -> SelectedMap:
        return select_map(
            "self-attention", self.library, self.recomputed, self.tokens, self.tokens, layer, head, words, self.notices,
            self.output_errors,
        )

    def context_scores(self, attend_from: str = "answer", layer: int | str = "mean", head: int | str = "mean"):
        """(context tokens, (C,) scores): mean attention from the answer (or question) tokens to the context."""
        rows = self.answer_index if attend_from == "answer" else self.question_index
        if head == "rollout":
            matrix = rollout_rows(self.shown, rows)  # (R, T)
        else:
            matrix = select(self.shown[:, :, rows], layer, head)  # (R, T): those rows alone
        scores = matrix[:, self.context_index].mean(axis=0)  # (C,)
        return [self.tokens[i] for i in self.context_index], scores


@dataclass
class Span:
    window: int
    start: int  # token index in the window (inclusive)
    end: int  # token index in the window (inclusive)
    score: float


@on_gpu
def answer(question: str, context: str, source: str | None = None, max_tokens: int = 384) -> QAResult:
    """Find the best answer span of `question` in `context` and keep the attention of its window."""
    question, notices = clean_text(question, "question")
    context, context_notices = clean_text(context, "context")
    notices += context_notices
    loaded = get_model("answer", source)
    if loaded.is_encoder_decoder or loaded.family.vision:
        raise BadInputError(f"{loaded.source} is not an extractive question-answering model")
    tokenizer = loaded.preprocessor
    limit = token_limit(loaded, max_tokens)
    with tokenizer_lock(tokenizer):
        if getattr(tokenizer, "is_fast", False):
            windows, sequence_ids, window_notices, total = encode_windows(tokenizer, question, context, limit)
        else:
            windows, sequence_ids, window_notices = encode_truncated(tokenizer, question, context, limit)
            total = 1
    notices += window_notices
    offsets = windows.pop("offset_mapping", None)  # (N, T, 2) character offsets, fast tokenizers only
    windows.pop("overflow_to_sample_mapping", None)
    if "token_type_ids" not in _forward_arguments(loaded):
        windows.pop("token_type_ids", None)  # DistilBERT has no segment embeddings
    count = windows["input_ids"].shape[0]
    context_positions = [[i for i, s in enumerate(sequence_ids[w]) if s == CONTEXT] for w in range(count)]
    if not any(context_positions):
        raise BadInputError("the context is empty after truncation; shorten the question")

    captured = None
    if count == 1:
        captured = _capture(loaded, windows, 0)
        logits = [(captured.outputs.start_logits[0], captured.outputs.end_logits[0])]  # [((T,), (T,))]
    else:
        logits = score_windows(loaded.model, windows)
    cls_id = getattr(tokenizer, "cls_token_id", None)
    spans = []
    for w, (start_logits, end_logits) in enumerate(logits):
        if context_positions[w]:
            ids = windows["input_ids"][w].tolist()
            cls_index = ids.index(cls_id) if cls_id is not None and cls_id in ids else None
            spans.append(Span(w, *best_span(start_logits, end_logits, context_positions[w], cls_index)))
    best = max(spans, key=lambda span: span.score)  # the first window wins a tie
    if captured is None:
        captured = _capture(loaded, windows, best.window)
    if count == total > 1:
        notices.append(
            f"Context split into {count} overlapping windows, all {count} searched; answer from window {best.window + 1}."
        )
    elif count < total:
        notices.append(f"Answer from window {best.window + 1} of the {count} searched.")

    if offsets is not None:
        answer_text = context[int(offsets[best.window, best.start, 0]) : int(offsets[best.window, best.end, 1])]
    else:
        decoded = tokenizer.decode(windows["input_ids"][0][best.start : best.end + 1], skip_special_tokens=True)
        answer_text = match_in_context(decoded.strip(), context)
    answer_text = answer_text.strip()
    if not answer_text:
        notices.append("The model found no answer in the context.")
    elif best.score < LOW_CONFIDENCE:
        notices.append(f"Low confidence ({best.score:.1%}): the answer may not be in the context.")
    real = windows["attention_mask"][best.window].bool()  # (T,) the window without padding
    shown = [s for s, keep in zip(sequence_ids[best.window], real.tolist()) if keep]  # (T',)
    padding_before = int((~real[: best.start]).sum())  # a tokenizer that pads on the left shifts the span
    return QAResult(
        model=loaded.source,
        answer=answer_text,
        score=best.score,
        span=(best.start - padding_before, best.end - padding_before),
        tokens=captured.tokens,
        question_index=[i for i, s in enumerate(shown) if s == QUESTION],
        context_index=[i for i, s in enumerate(shown) if s == CONTEXT],
        library=captured.library,
        recomputed=captured.recomputed,
        notices=model_notices(loaded) + notices,
        window=best.window,
        windows=count,
        windows_in_context=total,
        output_errors=captured.output_errors,
        inputs={name: value.detach().cpu() for name, value in captured.inputs.items()},
        source=source,
    )


def encode_windows(tokenizer, question: str, context: str, limit: int):
    """(windows (N, T) padded, with offset_mapping; per window the sequence id of each token
    (0 question, 1 context, None special); notices; how many windows the whole context makes):
    the question whole in each window, the context cut into overlapping windows of at most `limit`
    tokens in all, the first QA_MAX_WINDOWS of them kept."""
    room = _context_room(tokenizer, question, limit)
    stride = min(DOC_STRIDE, room // 2)  # the tokenizer needs the overlap smaller than a window's context
    windows = tokenizer(
        [question], [context], truncation="only_second", max_length=limit, stride=stride, padding="longest",
        return_overflowing_tokens=True, return_offsets_mapping=True, return_tensors="pt",
    )
    notices = []
    total = windows["input_ids"].shape[0]
    sequence_ids = [windows.sequence_ids(w) for w in range(min(total, QA_MAX_WINDOWS))]
    if total > QA_MAX_WINDOWS:
        last = windows["offset_mapping"][QA_MAX_WINDOWS - 1]  # (T, 2)
        read = max(end for (_, end), s in zip(last.tolist(), sequence_ids[-1]) if s == CONTEXT)
        notices.append(
            f"The context is long: searched its first {QA_MAX_WINDOWS} of {total} windows "
            f"({read:,} of {len(context):,} characters); one question searches at most {QA_MAX_WINDOWS} windows."
        )
        windows = {key: value[:QA_MAX_WINDOWS] for key, value in windows.items()}
    return dict(windows), sequence_ids, notices, total


def encode_truncated(tokenizer, question: str, context: str, limit: int):
    """A tokenizer without character offsets (not a fast tokenizer): one window, context cut at the limit."""
    room = _context_room(tokenizer, question, limit)
    full = len(tokenizer(question, context, truncation=False)["input_ids"])
    batch = tokenizer([question], [context], return_tensors="pt", truncation="only_second", max_length=limit)
    ids = batch["input_ids"][0].tolist()
    special = tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
    question_tokens = limit - tokenizer.num_special_tokens_to_add(pair=True) - room
    sequence_ids, seen = [], 0
    for is_special in special:  # the first question_tokens ordinary tokens are the question
        sequence_ids.append(None if is_special else QUESTION if seen < question_tokens else CONTEXT)
        seen += not is_special
    notices = ["This model's tokenizer gives no character offsets (it is not a fast tokenizer): "
               "the answer is its decoding, matched back to the context where possible."]
    if full > limit:
        notices.append(f"Context truncated to the model's limit: kept {limit} of {full:,} tokens.")
    return dict(batch), [sequence_ids], notices


def _context_room(tokenizer, question: str, limit: int) -> int:
    """Tokens left for the context in a window of `limit` tokens; refuses a question that fills it."""
    question_tokens = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    room = limit - tokenizer.num_special_tokens_to_add(pair=True) - question_tokens
    if room < 1:
        raise BadInputError(
            f"the question is too long for this model: question and context share {limit} tokens; "
            "shorten the question"
        )
    return room


def score_windows(model, windows) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Start and end logits of every window (on the CPU), WINDOW_BATCH windows per plain forward pass (no capture)."""
    device = next(model.parameters()).device
    count = windows["input_ids"].shape[0]
    logits = []
    with torch.no_grad():
        for first in range(0, count, WINDOW_BATCH):
            chunk = {key: value[first : first + WINDOW_BATCH].to(device) for key, value in windows.items()}
            outputs = model(**chunk, return_dict=True)
            logits += list(zip(outputs.start_logits.cpu(), outputs.end_logits.cpu()))  # each (T,)
    return logits


@dataclass
class _Captured:
    tokens: list[str]
    library: np.ndarray | None  # (L, H, T, T); None under sdpa
    recomputed: np.ndarray  # (L, H, T, T)
    output_errors: np.ndarray | None  # (L, H) under sdpa
    outputs: object
    inputs: dict  # the window without its padding, (1, T') each


def _capture(loaded, windows, index: int) -> _Captured:
    """One window, without its padding, through the model with its attention recomputed and checked."""
    real = windows["attention_mask"][index].bool()  # (T,)
    inputs = {key: value[index][real][None] for key, value in windows.items()}  # each (1, T')
    tokens = token_labels(loaded.preprocessor, inputs["input_ids"][0].tolist())
    checked = checked_forward(loaded, inputs, Side([tokens], inputs["attention_mask"].bool()))
    stack = checked.stack(ENCODER)  # (L, H, T', T') each
    return _Captured(tokens, stack.library, stack.recomputed, stack.output_errors, checked.outputs, inputs)


def best_span(
    start_logits: torch.Tensor, end_logits: torch.Tensor, context: list[int], cls_index: int | None = None
) -> tuple[int, int, float]:
    """The (start, end, score) of the best span inside `context` positions.

    P(start) and P(end) are softmaxes over the context positions plus `cls_index` (every other
    position masked out); the span maximises P(start)·P(end) with start ≤ end < start + MAX_ANSWER_TOKENS.
    """
    keep = torch.zeros(start_logits.shape[-1], dtype=torch.bool)  # (T,)
    keep[context] = True
    if cls_index is not None:
        keep[cls_index] = True
    start_p = torch.softmax(start_logits.double().masked_fill(~keep, -torch.inf), dim=-1)  # (T,)
    end_p = torch.softmax(end_logits.double().masked_fill(~keep, -torch.inf), dim=-1)  # (T,)
    in_context = torch.zeros_like(keep)  # (T,) [CLS] is in the softmax but never in an answer
    in_context[context] = True
    joint = start_p[:, None] * end_p[None, :]  # (T, T)
    offsets = torch.arange(len(start_p))
    valid = (offsets[None, :] >= offsets[:, None]) & (offsets[None, :] < offsets[:, None] + MAX_ANSWER_TOKENS)
    valid &= in_context[:, None] & in_context[None, :]
    joint = joint.masked_fill(~valid, -1.0)
    flat = int(joint.argmax())
    start, end = divmod(flat, joint.shape[1])
    return start, end, float(joint[start, end])


def match_in_context(decoded: str, context: str) -> str:
    """The context's own characters for a decoded answer: the first stretch of the context equal to
    it ignoring case and whitespace ("didn ' t" -> "didn't"); the decoding itself if none is."""
    characters = [re.escape(ch) for ch in decoded if not ch.isspace()]
    if not characters:
        return decoded
    found = re.search(r"\s*".join(characters), context, flags=re.IGNORECASE)
    return found.group(0) if found else decoded


def _forward_arguments(loaded) -> set[str]:
    import inspect

    return set(inspect.signature(loaded.model.forward).parameters)
